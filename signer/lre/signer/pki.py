"""Certificates for the token's keys: CSRs signed on the token, and a local CA
for development and tests that issues the seal and TSA certificates."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lre.runtime import structures as s
from lre.signer.token import Token

SEAL = "seal"
TIMESTAMPING = "timestamping"


def build_csr(token: Token, key_label: str, subject: str) -> bytes:
    """A PKCS#10 request for the token key ``key_label``, signed on the token.

    ``subject`` is an RFC 4514 string such as ``CN=LRE Seal,O=Provider,C=FR``.
    """
    info = s.CertificationRequestInfo(
        version=0,
        subject=s.tlv(x509.Name.from_rfc4514_string(subject).public_bytes()),
        subject_pk_info=s.tlv(token.public_key_info(key_label)),
        attributes=asn1.SetOf([]),
    )
    signature = token.sign_digest(key_label, hashlib.sha256(asn1.encode_der(info)).digest())
    request = s.CertificationRequest(
        certification_request_info=info,
        signature_algorithm=s.algorithm(s.ECDSA_WITH_SHA256),
        signature=asn1.BitString(signature, 0),
    )
    return asn1.encode_der(request)


def import_certificate(token: Token, key_label: str, certificate_der: bytes) -> None:
    """Stores the CA-issued certificate beside its key, after checking they match."""
    cert = x509.load_der_x509_certificate(certificate_der)
    on_token = serialization.load_der_public_key(token.public_key_info(key_label))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, spki) != on_token.public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise ValueError(f"the certificate is not for the key {key_label!r}")
    token.import_certificate(key_label, certificate_der, cert.subject.public_bytes())


@dataclass
class LocalCA:
    """A one-tier development CA whose key lives in a file (never in production)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "LRE Development Root CA") -> LocalCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LRE development"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, key_file: Path, cert_file: Path) -> LocalCA:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file} is not an EC key")
        return cls(key, x509.load_pem_x509_certificate(cert_file.read_bytes()))

    def save(self, key_file: Path, cert_file: Path) -> None:
        key_file.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue_crl(self, days: int = 30) -> x509.CertificateRevocationList:
        """An empty CRL of this CA: the revocation data that PAdES B-LT embeds.

        Nothing is ever revoked in development; what matters is a current,
        signed statement that the seal and TSA certificates are not.
        """
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, csr_der: bytes, purpose: str, days: int = 825) -> bytes:
        """A DER certificate for the CSR's key, with the extensions of ``purpose``."""
        request = x509.load_der_x509_csr(csr_der)
        if not request.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self.certificate.subject)
            .public_key(request.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(request.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if purpose == TIMESTAMPING:
            # RFC 3161 2.3: exactly one EKU, id-kp-timeStamping, critical.
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
        elif purpose != SEAL:
            raise ValueError(f"unknown certificate purpose {purpose!r}")
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
