"""The CAs' CRLs (``crl_file``): read when the file changes, and checked
before a signature embeds them as its validation data (level B-LT).

Both B-LT signatures use them: the PAdES proofs (in the PDF's DSS) and the
CAdES evidence seals (in the SignedData ``crls`` field)."""

from __future__ import annotations

import datetime as dt
import functools
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


# Every seal checks the same few CRLs: parse and verify each once (a CRL
# signature check costs more than the rest of the check together).
@functools.lru_cache(maxsize=64)
def _parsed(der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(der)


@functools.lru_cache(maxsize=256)
def _signed_by(crl_der: bytes, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return _parsed(crl_der).is_signature_valid(key)


def proof_of_validity(
    crl_file: CrlFile, chains: list[list[x509.Certificate]], now: dt.datetime
) -> list[bytes]:
    """The CRLs (DER) that show every certificate of ``chains`` unrevoked ``now``.

    Each chain is a leaf then its CAs; a self-signed root needs no CRL (it is
    the trust anchor). Raises ValidationDataUnavailable when a CA's CRL is
    missing, unreadable, not signed by it, stale, or revokes the certificate.
    """
    try:
        ders = [c.dump() for c in crl_file.current()]
        crls = [_parsed(d) for d in ders]
    except (OSError, ValueError) as exc:
        raise ValidationDataUnavailable(
            f"the CAs' CRLs cannot be read ({type(exc).__name__})"
        ) from None
    used: dict[bytes, None] = {}
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
                if c.issuer == issuer.subject and _signed_by(der, issuer)
            ]
            current = [
                (der, c)
                for der, c in theirs
                if c.last_update_utc <= now
                and c.next_update_utc is not None
                and now < c.next_update_utc
            ]
            if not current:
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
            used.update((der, None) for der, _ in current)
    return list(used)
