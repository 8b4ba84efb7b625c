"""Another implementation as the external TSA: OpenSSL's own (`openssl ts
-reply`), with an RSA key and its own CA, answering RFC 3161 over HTTP on
127.0.0.1 (one `openssl ts` process per request, behind a small loopback
front). What a provider buying timestamps from a TSA that is not ours, with
RSA keys, gets."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CONFIG = """\
[tsa]
default_tsa = tsa_config
[tsa_config]
serial = {root}/serial
crypto_device = builtin
signer_cert = {root}/tsa.pem
certs = {root}/tsa.pem
signer_key = {root}/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.3161.2
other_policies = 1.3.6.1.4.1.99999.3161.3
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenSSL TSA test"),
        ]
    )


def _pem(root: Path, name: str, certificate: x509.Certificate) -> None:
    (root / name).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


class OpensslTsa:
    """Its CA (RSA 2048), its TSA certificate (EKU timeStamping, critical),
    the CA's CRL, and the `openssl ts` configuration, under ``root``."""

    def __init__(self, root: Path, tsa_days: int = 365) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = rsa.generate_private_key(65537, 2048)
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("OpenSSL TSA Root CA"))
            .issuer_name(_name("OpenSSL TSA Root CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = rsa.generate_private_key(65537, 2048)
        tsa = (
            x509.CertificateBuilder()
            .subject_name(_name("OpenSSL Test TSA"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=tsa_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _pem(root, "root-ca.pem", ca)
        _pem(root, "tsa.pem", tsa)
        (root / "tsa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        self.chain.write_bytes((root / "tsa.pem").read_bytes() + self.root_ca.read_bytes())
        (root / "serial").write_text("01\n", encoding="utf-8")
        self.config = root / "ts.cnf"
        self.config.write_text(_CONFIG.format(root=root), encoding="utf-8")

    @property
    def root_ca(self) -> Path:
        return self.root / "root-ca.pem"

    @property
    def chain(self) -> Path:
        return self.root / "tsa-chain.pem"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    @contextmanager
    def serving(self) -> Iterator[str]:
        """The TSA over HTTP on 127.0.0.1; yields its URL."""
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with tempfile.TemporaryDirectory() as work:
                    (Path(work) / "q.tsq").write_bytes(query)
                    done = subprocess.run(
                        ["openssl", "ts", "-reply", "-config", str(tsa.config),
                         "-queryfile", f"{work}/q.tsq", "-out", f"{work}/r.tsr"],
                        capture_output=True, timeout=30,
                    )  # fmt: skip
                    reply = (Path(work) / "r.tsr").read_bytes() if done.returncode == 0 else b""
                self.send_response(200 if reply else 500)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
