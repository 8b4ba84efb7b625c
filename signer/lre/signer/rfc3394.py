"""RFC 3394 AES key wrap over a single-block AES cipher the caller provides.

For tokens that offer CKM_AES_ECB but not CKM_AES_KEY_WRAP (p11-kit 0.24's
remoting forwards only the former): the wrap key stays on the token, which
does each block operation; this module only chains them. The output is the
same bytes as CKM_AES_KEY_WRAP's, so either way of computing it reads the
other's blobs.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

Block = Callable[[bytes], bytes]  # one 16-byte AES block in, one out
DEFAULT_IV = b"\xa6" * 8


class IntegrityError(ValueError):
    """The unwrapped value's integrity check failed (wrong key or altered blob)."""


def wrap(encrypt: Block, plaintext: bytes) -> bytes:
    if len(plaintext) < 16 or len(plaintext) % 8:
        raise ValueError("RFC 3394 wraps 16 bytes or more, a multiple of 8")
    a, r = DEFAULT_IV, [plaintext[i : i + 8] for i in range(0, len(plaintext), 8)]
    n = len(r)
    for j in range(6):
        for i in range(n):
            b = encrypt(a + r[i])
            a = _xor(b[:8], n * j + i + 1)
            r[i] = b[8:]
    return a + b"".join(r)


def unwrap(decrypt: Block, wrapped: bytes) -> bytes:
    if len(wrapped) < 24 or len(wrapped) % 8:
        raise IntegrityError("not an RFC 3394 wrapped value")
    a, r = wrapped[:8], [wrapped[i : i + 8] for i in range(8, len(wrapped), 8)]
    n = len(r)
    for j in reversed(range(6)):
        for i in reversed(range(n)):
            b = decrypt(_xor(a, n * j + i + 1) + r[i])
            a, r[i] = b[:8], b[8:]
    if not hmac.compare_digest(a, DEFAULT_IV):
        raise IntegrityError("integrity check failed")
    return b"".join(r)


def _xor(half: bytes, t: int) -> bytes:
    return (int.from_bytes(half) ^ t).to_bytes(8)
