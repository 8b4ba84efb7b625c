"""Whom a bundle must come from: the provider's declared certificates.

A root CA certifies every subscriber of the CA, not only the provider: a
seal by any other subscriber's key chains to the same root. So a verifier
names the provider itself, by the certificates it publishes beside its root
(current and retired): its seal certificates and the certificates of the
timestamp authorities it uses. Every seal, tree head and PDF signature must
be by one of the seal certificates, every timestamp by one of the TSAs.
A certificate with the timeStamping extended key usage is a TSA's; any other
is a seal's. Also here: JSON read within bounds, since a bundle is input
from anyone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from lre.verify.cms import SealProblem

# The deepest nesting of a JSON member of a bundle: the evidence goes 4 deep.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Provider:
    seals: dict[bytes, str]  # SHA-256 of the DER -> the subject, for messages
    tsas: dict[bytes, str]

    @classmethod
    def of(cls, certificates: list[bytes]) -> Provider:
        """From DER certificates; ValueError if one is not a certificate."""
        seals: dict[bytes, str] = {}
        tsas: dict[bytes, str] = {}
        for der in certificates:
            certificate = asn1_x509.Certificate.load(der)
            certificate.native  # noqa: B018 -- parse now, fail here
            eku = certificate.extended_key_usage_value
            usages = eku.native if eku is not None else []
            target = tsas if "time_stamping" in usages else seals
            target[hashlib.sha256(der).digest()] = certificate.subject.human_friendly
        return cls(seals, tsas)

    @property
    def names(self) -> str:
        return "; ".join(sorted(set(self.seals.values())))

    def check_seal(self, certificate: asn1_x509.Certificate, what: str) -> str:
        if hashlib.sha256(certificate.dump()).digest() not in self.seals:
            raise SealProblem(
                f"{what} by {certificate.subject.human_friendly}, which is not one of the "
                f"provider's seal certificates ({self.names or 'none declared'}): not the provider"
            )
        return f"{what} by the provider's seal certificate {certificate.subject.human_friendly}"

    def check_tsa(self, certificate: asn1_x509.Certificate, what: str) -> str:
        if hashlib.sha256(certificate.dump()).digest() not in self.tsas:
            raise SealProblem(
                f"{what} by {certificate.subject.human_friendly}, which is not a timestamp "
                "authority the provider declared"
            )
        return f"{what} by the declared TSA {certificate.subject.human_friendly}"


def load_certificates(data: bytes) -> list[bytes]:
    """DER certificates of a PEM bundle, or the one DER certificate."""
    if pem.detect(data):
        return [d for t, _h, d in pem.unarmor(data, multiple=True) if t == "CERTIFICATE"]
    return [data]


def load_json(data: bytes, name: str) -> Any:
    """``data`` as JSON, refused (SealProblem) when it is not JSON or nests
    deeper than a bundle's documents ever do (the parser would recurse)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise SealProblem(f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    try:
        return json.loads(data, object_pairs_hook=_unique)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise SealProblem(f"{name} is not JSON") from None
    except _RepeatedKey as exc:
        # Parsers differ on which of the two they keep: one reader would
        # see another document than the next.
        raise SealProblem(f"{name} repeats the key {exc.args[0]!r}") from None


class _RepeatedKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [k for k, _ in pairs]
        raise _RepeatedKey(next(k for k in keys if keys.count(k) > 1))
    return found
