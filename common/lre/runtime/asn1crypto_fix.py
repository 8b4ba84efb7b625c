"""A fix for asn1crypto's detection of indefinite lengths, applied on import.

asn1crypto is under pyHanko (PAdES signing in the signer) and the tests' own
parsing of what the signer produces.

asn1crypto 1.5.1 (the latest release) takes any header whose last byte is
0x80 for a BER indefinite length, so a definite length of 128 (``81 80``) or
384 (``82 01 80``) makes every ``dump()`` re-encode the whole subtree, and
nested structures (a timestamp token inside a seal) then take seconds or
minutes, depending on random signature and serial lengths. Upstream:
wbond/asn1crypto#249 (open), fix proposed in #302.

A true indefinite-length value was loaded with its end-of-contents trailer
(``00 00``); a definite one has none. For the latter we drop the cached
header before dumping, which asn1crypto then recomputes from the same DER
contents, exactly as for a freshly built value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asn1crypto import core

_PATCHED = "_lre_definite_length_fix"


def _definite_length_fix(dump: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(dump)
    def fixed(self: Any, force: bool = False) -> bytes:
        header = self._header
        if header is not None and header[-1:] == b"\x80" and not self._trailer:
            self._header = None
        return dump(self, force)

    setattr(fixed, _PATCHED, True)
    return fixed


def apply() -> None:
    for cls in (core.Asn1Value, core.Choice, core.Primitive, core.Sequence, core.SequenceOf):
        dump = cls.__dict__["dump"]
        if not getattr(dump, _PATCHED, False):
            cls.dump = _definite_length_fix(dump)


apply()
