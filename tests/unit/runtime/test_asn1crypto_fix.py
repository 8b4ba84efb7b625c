"""lre.runtime.asn1crypto_fix: definite lengths ending in 0x80 are not taken for indefinite ones."""

from __future__ import annotations

from asn1crypto import core

from lre.runtime import asn1crypto_fix


class Level(core.Sequence):
    _fields = [("child", core.Any), ("flag", core.Boolean, {"default": False})]


def test_a_definite_length_of_128_is_not_reencoded() -> None:
    # Contents of exactly 128 bytes (header 30 81 80) that spell out a DEFAULT
    # value: a re-encode would drop it, so equal bytes prove none happened.
    contents = b"\x04\x7b" + b"a" * 123 + b"\x01\x01\x00"
    assert len(contents) == 128
    der = b"\x30\x81\x80" + contents
    assert Level.load(der).dump() == der


def test_a_definite_length_of_384_is_not_reencoded() -> None:
    contents = b"\x04\x82\x01\x79" + b"a" * 377 + b"\x01\x01\x00"
    assert len(contents) == 0x180
    der = b"\x30\x82\x01\x80" + contents
    assert Level.load(der).dump() == der


def test_true_indefinite_lengths_are_still_reencoded_as_der() -> None:
    value = core.Sequence.load(bytes.fromhex("3080020230390000"))
    assert value.dump() == bytes.fromhex("300402023039")


def test_the_fix_is_applied_once() -> None:
    asn1crypto_fix.apply()
    assert core.Sequence.dump.__wrapped__.__name__ == "dump"  # type: ignore[attr-defined]
    assert not hasattr(core.Sequence.dump.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
