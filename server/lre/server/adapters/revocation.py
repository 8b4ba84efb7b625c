"""Revocation status of a proofing certificate, found by the server itself.

A party proofed by certificate sends its chain, and may send CRLs; what it
leaves out must not make a revoked certificate good. pyHanko's certificate
validator does the work (no hand-written CRL or OCSP code): it builds the
path to the configured anchors, then for every certificate below them
requires revocation information (``revocation_mode="require"``): the CRLs
the party sent, those fetched from the certificate's CRL distribution
points, or an OCSP response from the responder its AIA names. Nothing is
fetched for a certificate that does not chain to an anchor (the path is
built first), so a party cannot make the server fetch its own URLs.

What was fetched is kept (``cache_s``, never past its own nextUpdate) and
tried first without the network. Offline (no fetching at all), the
revocation data comes from a directory the operators keep current. A status
that cannot be shown (responder down, no distribution point, stale data) is
*unknown*, and unknown refuses:
proofing by certificate gives assurance level high, which fails closed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

logger = logging.getLogger("lre.server.revocation")


@dataclass(frozen=True)
class _Kept:
    data: asn1_crl.CertificateList | asn1_ocsp.OCSPResponse
    until: float  # time.monotonic()


class RevocationChecker:
    """``refusal`` says why a certificate's revocation status does not let it
    proof (revoked, or unknown), or None when it is shown good."""

    def __init__(
        self,
        anchors: tuple[x509.Certificate, ...],
        cache_s: float,
        timeout_s: float,
        offline_dir: Path | None = None,
        fetch: bool = True,
    ) -> None:
        self._anchors = [_asn1(c) for c in anchors]
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._kept: dict[bytes, _Kept] = {}
        # Offline mode: CRLs and OCSP responses the operators put in a
        # directory (read again when it changes), and no fetching.
        self._offline_dir = offline_dir
        self._fetch = fetch
        self._offline_seen: tuple[tuple[str, int], ...] = ()
        self._offline: tuple[list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]] = (
            [],
            [],
        )

    def refusal(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        crls_der: list[bytes],
        now: dt.datetime,
    ) -> str | None:
        return asyncio.run(self._refusal(leaf, intermediates, crls_der, now))

    async def _refusal(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        crls_der: list[bytes],
        now: dt.datetime,
    ) -> str | None:
        certificate, others = _asn1(leaf), [_asn1(c) for c in intermediates]
        given = [asn1_crl.CertificateList.load(d) for d in crls_der]
        crls, ocsps = self._cached()
        offline_crls, offline_ocsps = self._read_offline()
        crls, ocsps = [*crls, *offline_crls], [*ocsps, *offline_ocsps]
        # First with what the party sent and what is kept, without the network.
        first = await self._check(certificate, others, [*given, *crls], ocsps, now, None)
        if first is None or first.startswith("certificate revoked") or not self._fetch:
            if first is not None:
                logger.info("proofing certificate refused", extra={"reason": first})
            return first
        async with AIOHttpFetcherBackend(per_request_timeout=self._timeout_s) as fetchers:
            context = _context(self._anchors, others, [*given, *crls], ocsps, now, fetchers)
            found = await _validate(certificate, others, context)
            self._keep(context)
        if found is not None:
            logger.info("proofing certificate refused", extra={"reason": found})
        return found

    async def _check(
        self,
        certificate: asn1_x509.Certificate,
        others: list[asn1_x509.Certificate],
        crls: list[asn1_crl.CertificateList],
        ocsps: list[asn1_ocsp.OCSPResponse],
        now: dt.datetime,
        fetchers: object,
    ) -> str | None:
        context = _context(self._anchors, others, crls, ocsps, now, fetchers)
        return await _validate(certificate, others, context)

    def _read_offline(
        self,
    ) -> tuple[list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]]:
        """The directory's CRLs (``*.crl``, DER or PEM) and OCSP responses
        (``*.ocsp``, DER), read again when a file changes; unreadable files are
        logged and skipped (what they would have shown stays unknown)."""
        directory = self._offline_dir
        if directory is None:
            return [], []
        files = sorted(p for p in directory.iterdir() if p.suffix in (".crl", ".ocsp"))
        seen = tuple((p.name, p.stat().st_mtime_ns) for p in files)
        with self._lock:
            if seen == self._offline_seen:
                return self._offline
        crls, ocsps = [], []
        for path in files:
            data = path.read_bytes()
            try:
                if path.suffix == ".ocsp":
                    ocsps.append(asn1_ocsp.OCSPResponse.load(data))
                elif pem.detect(data):
                    crls += [
                        asn1_crl.CertificateList.load(d)
                        for _, _, d in pem.unarmor(data, multiple=True)
                    ]
                else:
                    crls.append(asn1_crl.CertificateList.load(data))
            except ValueError:
                logger.warning("revocation file unreadable", extra={"file": path.name})
        with self._lock:
            self._offline_seen, self._offline = seen, (crls, ocsps)
        return crls, ocsps

    def _cached(self) -> tuple[list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]]:
        clock = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._kept.items() if v.until <= clock]:
                del self._kept[key]
            kept = [v.data for v in self._kept.values()]
        return (
            [k for k in kept if isinstance(k, asn1_crl.CertificateList)],
            [k for k in kept if isinstance(k, asn1_ocsp.OCSPResponse)],
        )

    def _keep(self, context: ValidationContext) -> None:
        clock, now = time.monotonic(), dt.datetime.now(dt.UTC)
        found: dict[bytes, _Kept] = {}
        for item in [*context.crls, *context.ocsps]:
            next_update = _next_update(item)
            if next_update is None or next_update <= now:
                continue  # nothing says until when it holds: not kept
            left = min(self._cache_s, (next_update - now).total_seconds())
            found[item.dump()] = _Kept(item, clock + left)
        with self._lock:
            self._kept.update(found)


def _context(
    anchors: list[asn1_x509.Certificate],
    others: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
    ocsps: list[asn1_ocsp.OCSPResponse],
    now: dt.datetime,
    fetchers: object,
) -> ValidationContext:
    return ValidationContext(
        trust_roots=anchors,
        other_certs=others,
        moment=now,
        crls=crls,
        ocsps=ocsps,
        allow_fetching=fetchers is not None,
        fetchers=fetchers,  # type: ignore[arg-type]
        revocation_mode="require",
    )


async def _validate(
    certificate: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    context: ValidationContext,
) -> str | None:
    validator = CertificateValidator(
        certificate, intermediate_certs=others, validation_context=context
    )
    # Reasons in our words: the validator's messages name the certificate's
    # subject (a person's name), and these reasons are logged.
    try:
        await validator.async_validate_usage(set())  # type: ignore[no-untyped-call]
    except RevokedError:
        return "certificate revoked"
    except PathBuildingError:
        return "chain: no valid path to a trust anchor"
    except (PathValidationError, ValidationError):
        return "revocation status unknown"
    return None


def _next_update(item: asn1_crl.CertificateList | asn1_ocsp.OCSPResponse) -> dt.datetime | None:
    if isinstance(item, asn1_crl.CertificateList):
        value: dt.datetime | None = item["tbs_cert_list"]["next_update"].native
        return value
    try:
        responses = item["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
        updates = [r["next_update"].native for r in responses]
    except (KeyError, ValueError, TypeError):
        return None
    return min(updates) if updates and None not in updates else None


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
