"""A local certificate authority for the transport (TLS and mutual TLS) of
`make run` and the tests: a CA, a certificate for the services on localhost,
and one client certificate per caller role. Production brings its own PKI."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The DNS name in each caller's certificate, and the role the default
# `caller_roles` setting maps it to.
CALLERS = {
    "sender-gateway.lre.internal": "sender_gateway",
    "recipient-portal.lre.internal": "recipient_portal",
    "operator.lre.internal": "operator",
    "auditor.lre.internal": "auditor",
}


SERVER_CLIENT = "server.lre.internal"


@dataclass(frozen=True)
class TlsFiles:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def service_cert(self) -> Path:
        return self.root / "service.pem"

    @property
    def service_key(self) -> Path:
        return self.root / "service.key"

    def client_cert(self, name: str) -> Path:
        return self.root / f"{name}.pem"

    def client_key(self, name: str) -> Path:
        return self.root / f"{name}.key"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LRE development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    subject: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate, key


def create_dev_tls(root: Path) -> TlsFiles:
    """Writes the CA and certificates under ``root`` unless they exist."""
    files = TlsFiles(root)
    if files.ca.exists():
        return files
    root.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("LRE development transport CA")
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    service, service_key = _issue(
        ca_name,
        ca_key,
        "localhost",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    files.service_cert.write_bytes(service.public_bytes(serialization.Encoding.PEM))
    _write_key(files.service_key, service_key)
    # The server's own certificate for its mutual TLS to the signer (no role).
    for dns in [*CALLERS, SERVER_CLIENT]:
        name = dns.split(".")[0]
        client, client_key = _issue(
            ca_name, ca_key, dns, [x509.DNSName(dns)], ExtendedKeyUsageOID.CLIENT_AUTH
        )
        files.client_cert(name).write_bytes(client.public_bytes(serialization.Encoding.PEM))
        _write_key(files.client_key(name), client_key)
    # Last: its presence means the set is complete.
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files
