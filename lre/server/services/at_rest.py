"""Small secrets kept in the database (TOTP seeds, webhook keys), encrypted
with AES-256-GCM under the server's secrets key and bound to their row."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def encrypt(key: bytes, secret: bytes, row: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret, row)


def decrypt(key: bytes, ciphertext: bytes, row: bytes) -> bytes:
    return AESGCM(key).decrypt(ciphertext[:12], ciphertext[12:], row)
