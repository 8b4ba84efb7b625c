"""The CAs' CRLs (``crl_file``): read when the file changes, and checked
before a signature embeds them as its validation data (level B-LT).

Both B-LT signatures use them: the PAdES proofs (in the PDF's DSS) and the
CAdES evidence seals (in the SignedData ``crls`` field)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from asn1crypto import crl, pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lre.signer.errors import ValidationDataUnavailable


class CrlFile:
    """The CAs' CRLs, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._crls: list[crl.CertificateList] = []

    def current(self) -> list[crl.CertificateList]:
        with self._lock:
            mtime = self._path.stat().st_mtime
            if mtime != self._mtime:
                self._crls = [
                    crl.CertificateList.load(der)
                    for _type, _headers, der in pem.unarmor(self._path.read_bytes(), multiple=True)
                ]
                self._mtime = mtime
            return self._crls


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return crl.is_signature_valid(key)


class ProofOfValidity:
    """``proof_of_validity`` for the same chains at every signature, computed
    again only when the CRL file changes or a CRL it used expires."""

    def __init__(self, crl_file: CrlFile, chains: list[list[x509.Certificate]]) -> None:
        self._crl_file = crl_file
        self._chains = chains
        self._lock = threading.Lock()
        self._cached: tuple[object, dt.datetime, list[bytes]] | None = None

    def crls(self, now: dt.datetime) -> list[bytes]:
        try:
            current = self._crl_file.current()
        except (OSError, ValueError) as exc:
            raise ValidationDataUnavailable(
                f"the CAs' CRLs cannot be read ({type(exc).__name__})"
            ) from None
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] is current and now < cached[1]:
                return cached[2]
        ders, until = proof_of_validity(current, self._chains, now)
        with self._lock:
            self._cached = (current, until, ders)
        return ders


def proof_of_validity(
    current: list[crl.CertificateList], chains: list[list[x509.Certificate]], now: dt.datetime
) -> tuple[list[bytes], dt.datetime]:
    """The CRLs (DER) that show every certificate of ``chains`` unrevoked
    ``now``, and until when they all stay current.

    Each chain is a leaf then its CAs; a self-signed root needs no CRL (it is
    the trust anchor). Raises ValidationDataUnavailable when a CA's CRL is
    missing, unreadable, not signed by it, stale, or revokes the certificate.
    """
    try:
        ders = [c.dump() for c in current]
        crls = [x509.load_der_x509_crl(d) for d in ders]
    except ValueError as exc:
        raise ValidationDataUnavailable(
            f"the CAs' CRLs cannot be read ({type(exc).__name__})"
        ) from None
    used: dict[bytes, None] = {}
    until = dt.datetime.max.replace(tzinfo=dt.UTC)
    for chain in chains:
        for certificate in chain:
            if certificate.issuer == certificate.subject:
                continue
            issuer = next((c for c in chain if c.subject == certificate.issuer), None)
            if issuer is None:
                raise ValidationDataUnavailable(
                    f"no issuer certificate for {certificate.subject.rfc4514_string()}"
                )
            theirs = [
                (der, c)
                for der, c in zip(ders, crls, strict=True)
                if c.issuer == issuer.subject and _signed_by(c, issuer)
            ]
            fresh = [
                (der, c)
                for der, c in theirs
                if c.last_update_utc <= now
                and c.next_update_utc is not None
                and now < c.next_update_utc
            ]
            if not fresh:
                raise ValidationDataUnavailable(
                    f"no current CRL of {issuer.subject.rfc4514_string()}"
                )
            if any(
                c.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
                for _, c in theirs
            ):
                raise ValidationDataUnavailable(
                    f"{certificate.subject.rfc4514_string()} is revoked"
                )
            used.update((der, None) for der, _ in fresh)
            until = min([until, *(c.next_update_utc for _, c in fresh if c.next_update_utc)])
    return list(used), until
