"""Where the signature timestamps of seals and PDF proofs come from.

``timestamp_sources`` names them in fallback order: ``builtin`` (this
process's own TSA, on the token) and the external RFC 3161 TSAs described
in ``external_tsa_file``. Each signature is stamped by the first source that
gives a checked token; every failure and every fallback is logged (with
the source and the reason, never a credential) and counted. A source that
failed is passed over for its ``retry_after_s`` (30 s), unless it is the
last one, so that a TSA that times out does not hold every seal. Seals and
proofs carry the certificates and CRLs of every configured source's chain
(level B-LT), whichever of them stamped.

The external TSAs' file is TOML, one table per TSA::

    [tsa.qtsp-a]
    url = "https://tsa.example.eu/rfc3161"
    certificate_file = "qtsp-a-chain.pem"   # TSA certificate, then CAs to the root
    timeout_s = 5.0
    username = "provider"                   # HTTP Basic, optional
    password_file = "qtsp-a.password"
    # bearer_token_file, https_ca_file, policy_oid, max_skew_s, retry_after_s: optional

Relative paths are read from the file's directory.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import serialization

from lre.signer import metrics
from lre.signer.errors import ClockNotTrusted, NoTimestampSource
from lre.signer.tsa import TimestampAuthority
from lre.signer.tsa_external import ExternalTsa, ExternalTsaConfig, ExternalTsaError

log = logging.getLogger("lre.signer.timesources")

BUILTIN = "builtin"
_PATHS = ("certificate_file", "password_file", "bearer_token_file", "https_ca_file")
_FIELDS = {
    "url",
    "timeout_s",
    "username",
    "policy_oid",
    "max_skew_s",
    "retry_after_s",
    *_PATHS,
}


class TimestampSource(Protocol):
    name: str
    # The TSA's certificate, then its CAs up to the root.
    chain: list[x509.Certificate]
    # After a failure, the source is passed over this long (seconds): a TSA
    # that times out would otherwise hold every seal for its whole timeout.
    retry_after_s: float

    def timestamp_digest(self, digest: bytes) -> bytes: ...


class BuiltinSource:
    """This process's TSA (signer.tsa), whose key is on the token."""

    name = BUILTIN
    retry_after_s = 0.0

    def __init__(self, tsa: TimestampAuthority, ca_chain: list[x509.Certificate]) -> None:
        self._tsa = tsa
        self.chain = [tsa.certificate, *ca_chain]

    def timestamp_digest(self, digest: bytes) -> bytes:
        return asn1.encode_der(self._tsa.timestamp_digest(digest))


class TimestampSources:
    """The configured sources in fallback order."""

    def __init__(self, sources: list[TimestampSource]) -> None:
        if not sources:
            raise ValueError("timestamp_sources names no source")
        self._sources = sources
        self._lock = threading.Lock()
        self._passed_over_until: dict[str, float] = {}
        for source in sources:
            for result in ("granted", "failed", "skipped"):
                metrics.TSA_SOURCE_REQUESTS.labels(source.name, result)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._sources]

    @property
    def chains(self) -> list[list[x509.Certificate]]:
        return [s.chain for s in self._sources]

    def certificates(self, first: Iterable[x509.Certificate]) -> list[x509.Certificate]:
        """``first``, then each source's TSA certificate, then their CAs, once each."""
        ordered = [
            *first,
            *(s.chain[0] for s in self._sources),
            *(c for s in self._sources for c in s.chain[1:]),
        ]
        seen: dict[bytes, x509.Certificate] = {}
        for certificate in ordered:
            seen.setdefault(certificate.public_bytes(serialization.Encoding.DER), certificate)
        return list(seen.values())

    def timestamp_digest(self, digest: bytes) -> bytes:
        """A DER TimeStampToken over the SHA-256 ``digest`` from the first source
        that gives one. Raises NoTimestampSource, naming each source's reason,
        when none does; TokenUnavailable from the built-in TSA propagates (the
        seal key is on the same token: nothing could be signed anyway)."""
        reasons = []
        for i, source in enumerate(self._sources):
            last = i + 1 == len(self._sources)
            with self._lock:
                until = self._passed_over_until.get(source.name, 0.0)
            if not last and time.monotonic() < until:
                # Failed a moment ago: the next source, without waiting on this one.
                metrics.TSA_SOURCE_REQUESTS.labels(source.name, "skipped").inc()
                reasons.append(f"{source.name}: passed over after a recent failure")
                continue
            try:
                token = source.timestamp_digest(digest)
            except (ExternalTsaError, ClockNotTrusted) as exc:
                metrics.TSA_SOURCE_REQUESTS.labels(source.name, "failed").inc()
                with self._lock:
                    self._passed_over_until[source.name] = time.monotonic() + source.retry_after_s
                reasons.append(f"{source.name}: {exc}")
                after = self._sources[i + 1].name if i + 1 < len(self._sources) else "none"
                log.warning(
                    "timestamp source failed",
                    extra={"source": source.name, "reason": str(exc), "fallback": after},
                )
                continue
            metrics.TSA_SOURCE_REQUESTS.labels(source.name, "granted").inc()
            if i > 0:
                log.warning(
                    "signature timestamped by a fallback source",
                    extra={"source": source.name, "skipped": ", ".join(self.names[:i])},
                )
            return token
        raise NoTimestampSource("no timestamp source could stamp: " + "; ".join(reasons))


def load_external(path: Path) -> dict[str, ExternalTsaConfig]:
    """The external TSAs described in ``path`` (TOML), by name."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    unknown_top = set(data) - {"tsa"}
    if unknown_top:
        raise ValueError(f"{path.name}: unknown tables {', '.join(sorted(unknown_top))}")
    found = {}
    for name, table in data.get("tsa", {}).items():
        if not isinstance(table, dict):
            raise ValueError(f"{path.name}: tsa.{name} must be a table")
        if name == BUILTIN:
            raise ValueError(f"{path.name}: {BUILTIN!r} names the built-in TSA")
        unknown = set(table) - _FIELDS
        if unknown:
            raise ValueError(f"{path.name}: tsa.{name}: unknown {', '.join(sorted(unknown))}")
        if "url" not in table or "certificate_file" not in table:
            raise ValueError(f"{path.name}: tsa.{name} needs url and certificate_file")
        values: dict[str, Any] = dict(table)
        for key in _PATHS:
            if key in values:
                values[key] = _relative(path.parent, values[key])
        for key in ("timeout_s", "max_skew_s", "retry_after_s"):
            if key in values:
                values[key] = float(values[key])
        found[name] = ExternalTsaConfig(name=name, **values)
    return found


def _relative(base: Path, value: object) -> Path:
    candidate = Path(str(value))
    return candidate if candidate.is_absolute() else base / candidate


def external_sources(names: str, external_file: Path | None) -> dict[str, ExternalTsa]:
    """The external TSAs ``names`` (``timestamp_sources``) asks for, built
    (their certificates read) now, so that a bad configuration stops startup."""
    wanted = _names(names)
    configured = load_external(external_file) if external_file is not None else {}
    missing = [n for n in wanted if n != BUILTIN and n not in configured]
    if missing:
        raise ValueError(
            f"timestamp_sources names {', '.join(missing)}, not described in external_tsa_file"
        )
    return {n: ExternalTsa(configured[n]) for n in wanted if n != BUILTIN}


def ordered(
    names: str, external: dict[str, ExternalTsa], builtin: BuiltinSource
) -> TimestampSources:
    sources: list[TimestampSource] = [
        builtin if name == BUILTIN else external[name] for name in _names(names)
    ]
    return TimestampSources(sources)


def _names(names: str) -> list[str]:
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise ValueError("timestamp_sources must name at least one source")
    if len(set(wanted)) != len(wanted):
        raise ValueError("timestamp_sources names a source twice")
    return wanted
