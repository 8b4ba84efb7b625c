"""Secrets at rest: each blob names its key; older keys and blobs still read."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lre.server.adapters import at_rest
from lre.server.adapters.at_rest import SecretsKeys

OLD, NEW = os.urandom(32), os.urandom(32)
ROW = b"row-1"


def legacy(key: bytes, secret: bytes, row: bytes) -> bytes:
    """A blob as made before key ids: nonce ‖ ct ‖ tag."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret, row)


def test_blobs_name_their_key_and_older_keys_still_read() -> None:
    before = at_rest.encrypt(SecretsKeys(OLD), b"seed", ROW)
    assert before[:5] == b"\x01" + at_rest.key_id(OLD)
    rotated = SecretsKeys(NEW, (OLD,))
    assert at_rest.decrypt(rotated, before, ROW) == b"seed"
    after = at_rest.encrypt(rotated, b"seed", ROW)
    assert after[:5] == b"\x01" + at_rest.key_id(NEW)
    assert rotated.is_current(after) and not rotated.is_current(before)
    with pytest.raises(InvalidTag):  # the older key gone: refused, not garbage
        at_rest.decrypt(SecretsKeys(NEW), before, ROW)
    with pytest.raises(InvalidTag):  # bound to its row
        at_rest.decrypt(rotated, after, b"row-2")


def test_blobs_without_key_id_are_read_under_any_key_and_reencrypted() -> None:
    # Enough of them that some start with 0x01, the format byte, by chance.
    for n in range(600):
        blob = legacy(OLD, b"code %d" % n, ROW)
        rotated = SecretsKeys(NEW, (OLD,))
        assert at_rest.decrypt(rotated, blob, ROW) == b"code %d" % n
        fresh = at_rest.reencrypt(rotated, blob, ROW)
        assert fresh is not None and rotated.is_current(fresh)
        assert at_rest.decrypt(SecretsKeys(NEW), fresh, ROW) == b"code %d" % n
        assert at_rest.reencrypt(rotated, fresh, ROW) is None  # already current


def test_an_altered_blob_is_refused() -> None:
    blob = bytearray(at_rest.encrypt(SecretsKeys(OLD), b"seed", ROW))
    for at in (0, 1, 6, len(blob) - 1):
        altered = bytearray(blob)
        altered[at] ^= 0x01
        with pytest.raises(InvalidTag):
            at_rest.decrypt(SecretsKeys(OLD), bytes(altered), ROW)
