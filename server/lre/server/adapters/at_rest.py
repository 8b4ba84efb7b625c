"""Small secrets kept in the database (TOTP seeds, webhook keys, e-mailed
codes), encrypted with AES-256-GCM under the server's secrets key and bound
to their row (the row's id is the associated data).

A blob names the key that made it: ``0x01 ‖ key id (4) ‖ nonce (12) ‖ ct ‖ tag``,
so that the secrets key can be rotated: the current key encrypts, older keys
(``secrets_key_files_previous``) still decrypt until ``lre-server rekey
--secrets`` has re-encrypted everything under the current one. Blobs made
before key ids (``nonce ‖ ct ‖ tag``) are still read, under any of the keys.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lre.runtime.config import ConfigError

FORMAT = 1
KEY_ID_BYTES = 4
_NONCE = 12
_HEADER = 1 + KEY_ID_BYTES


def read_key(path: Path, name: str) -> bytes:
    """A 32-byte key written in hex in ``path``; ConfigError names the setting."""
    try:
        key = bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{name}: expected 32 bytes in hex")
    return key


def key_id(key: bytes) -> bytes:
    """Names a key without revealing it (a hash of it, under its own label)."""
    return hashlib.sha256(b"lre secrets key\x00" + key).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class SecretsKeys:
    """The key that encrypts (and keys the HMACs) and those that only decrypt."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def all(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)

    def is_current(self, blob: bytes) -> bool:
        return blob[:_HEADER] == bytes([FORMAT]) + key_id(self.current)


def encrypt(keys: SecretsKeys, secret: bytes, row: bytes) -> bytes:
    header = bytes([FORMAT]) + key_id(keys.current)
    nonce = os.urandom(_NONCE)
    return header + nonce + AESGCM(keys.current).encrypt(nonce, secret, header + row)


def decrypt(keys: SecretsKeys, blob: bytes, row: bytes) -> bytes:
    if blob[:1] == bytes([FORMAT]):
        header = blob[:_HEADER]
        for key in keys.all():
            if key_id(key) == header[1:]:
                try:
                    return AESGCM(key).decrypt(
                        blob[_HEADER : _HEADER + _NONCE], blob[_HEADER + _NONCE :], header + row
                    )
                except InvalidTag:
                    break  # perhaps a blob without key id that starts with 0x01
    # Before key ids: the nonce first, under whichever key was current then.
    for key in keys.all():
        try:
            return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], row)
        except InvalidTag:
            continue
    raise InvalidTag("no secrets key opens this blob")


def reencrypt(keys: SecretsKeys, blob: bytes, row: bytes) -> bytes | None:
    """The blob under the current key, or None when it already is."""
    if keys.is_current(blob):
        return None
    return encrypt(keys, decrypt(keys, blob, row), row)
