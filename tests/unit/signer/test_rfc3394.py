"""RFC 3394 over a block cipher: the RFC's own vectors, and agreement with
the `cryptography` implementation at every size the signer wraps."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from lre.signer import rfc3394


def ecb(key: bytes) -> tuple[rfc3394.Block, rfc3394.Block]:
    cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 -- one block at a time, as RFC 3394 asks
    return (
        lambda block: cipher.encryptor().update(block),
        lambda block: cipher.decryptor().update(block),
    )


KEK_256 = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (  # RFC 3394 4.3: 192 bits of key data with a 256-bit KEK
            "00112233445566778899AABBCCDDEEFF0001020304050607",
            "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1",
        ),
        (  # RFC 3394 4.6: 256 bits of key data with a 256-bit KEK
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        ),
    ],
)
def test_the_rfc_vectors(data: str, expected: str) -> None:
    encrypt, decrypt = ecb(KEK_256)
    assert rfc3394.wrap(encrypt, bytes.fromhex(data)) == bytes.fromhex(expected)
    assert rfc3394.unwrap(decrypt, bytes.fromhex(expected)) == bytes.fromhex(data)


@pytest.mark.parametrize("size", [48, 56, 64])
def test_agrees_with_cryptography_and_refuses_alterations(size: int) -> None:
    kek, secret = os.urandom(32), os.urandom(size)
    encrypt, decrypt = ecb(kek)
    wrapped = rfc3394.wrap(encrypt, secret)
    assert wrapped == aes_key_wrap(kek, secret)
    for at in range(len(wrapped)):
        altered = bytearray(wrapped)
        altered[at] ^= 0x80
        with pytest.raises(rfc3394.IntegrityError):
            rfc3394.unwrap(decrypt, bytes(altered))
    with pytest.raises(rfc3394.IntegrityError):
        rfc3394.unwrap(ecb(os.urandom(32))[1], wrapped)  # another key


def test_sizes_outside_the_rfc_are_refused() -> None:
    encrypt, decrypt = ecb(KEK_256)
    with pytest.raises(ValueError, match="multiple of 8"):
        rfc3394.wrap(encrypt, b"x" * 20)
    with pytest.raises(rfc3394.IntegrityError):
        rfc3394.unwrap(decrypt, b"x" * 16)
