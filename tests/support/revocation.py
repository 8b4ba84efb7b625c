"""A CA whose certificates name where their status is published, and the two
publishers as real processes on loopback ports: its CRL served over HTTP
(`python -m http.server`), and an OCSP responder (`openssl ocsp`) answering
from an index of what the CA issued and revoked."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from tests.support.processes import free_port, running, wait_for


class PublishingCA:
    """A root CA that revokes by CRL (at ``crl_url``) and by OCSP (``ocsp_url``)."""

    def __init__(self, root: Path, name: str = "Test Qualified CA") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.crl_port, self.ocsp_port = free_port(), free_port()
        self.crl_url = f"http://127.0.0.1:{self.crl_port}/ca.crl"
        self.ocsp_url = f"http://127.0.0.1:{self.ocsp_port}"
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        (root / "ca.pem").write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        (root / "ca.key").write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.issued: list[x509.Certificate] = []
        self.revoked: list[x509.Certificate] = []
        (root / "www").mkdir(exist_ok=True)
        self.publish()

    def issue(
        self, subject: x509.Name, crl: bool = True, ocsp: bool = True, crl_url: str | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A signing certificate naming the CRL distribution point and/or OCSP responder."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if crl:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl_url or self.crl_url)], None, None, None
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        if ocsp:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        self.issued.append(cert)
        self.publish()
        return key, cert

    def revoke(self, cert: x509.Certificate) -> None:
        self.revoked.append(cert)
        self.publish()

    def publish(self) -> None:
        """The CRL file the HTTP server serves and the index `openssl ocsp` reads."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=1))
            .add_extension(x509.CRLNumber(len(self.revoked) + 1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for cert in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(now - dt.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        (self.root / "www" / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
        lines = []
        for cert in self.issued:
            expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
            serial = format(cert.serial_number, "X")
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            dn = "/" + "/".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in cert.subject)
            if cert in self.revoked:
                when = (now - dt.timedelta(minutes=1)).strftime("%y%m%d%H%M%SZ")
                lines.append(f"R\t{expiry}\t{when}\t{serial}\tunknown\t{dn}")
            else:
                lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{dn}")
        (self.root / "index.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.root / "index.txt.attr").write_text("unique_subject = no\n", encoding="utf-8")

    def ocsp_response(self, cert: x509.Certificate, out: Path) -> None:
        """An OCSP response for ``cert`` made by `openssl ocsp` offline (the
        request, then the answer from the index), as an operator would fetch one."""
        leaf = self.root / "leaf.pem"
        leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ca, request = self.root / "ca.pem", self.root / "req.der"
        for args in (
            ["-issuer", str(ca), "-cert", str(leaf), "-no_nonce", "-reqout", str(request)],
            ["-index", str(self.root / "index.txt"), "-CA", str(ca), "-rsigner", str(ca),
             "-rkey", str(self.root / "ca.key"), "-ndays", "1", "-reqin", str(request),
             "-respout", str(out)],
        ):  # fmt: skip
            done = subprocess.run(["openssl", "ocsp", *args], capture_output=True, timeout=30)
            assert done.returncode == 0, done.stderr

    @contextmanager
    def crl_server(self) -> Iterator[str]:
        """The CRL over HTTP, a process of its own; yields its URL."""
        command = [
            sys.executable, "-m", "http.server", str(self.crl_port),
            "--bind", "127.0.0.1", "--directory", str(self.root / "www"),
        ]  # fmt: skip
        with running(command, {}, self.root / "crl-server.log"):
            assert wait_for(lambda: _listening(self.crl_port), timeout=20)
            yield self.crl_url

    @contextmanager
    def ocsp_responder(self) -> Iterator[str]:
        """An OCSP responder on 127.0.0.1: each POSTed request answered by
        `openssl ocsp` from the CA's index, signed with the CA's key.
        (`openssl ocsp -port` would listen on every interface.)"""
        root = self.root

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with tempfile.TemporaryDirectory() as work:
                    (Path(work) / "req.der").write_bytes(request)
                    done = subprocess.run(
                        ["openssl", "ocsp", "-index", str(root / "index.txt"),
                         "-CA", str(root / "ca.pem"), "-rsigner", str(root / "ca.pem"),
                         "-rkey", str(root / "ca.key"), "-ndays", "1",
                         "-reqin", f"{work}/req.der", "-respout", f"{work}/resp.der"],
                        capture_output=True, timeout=30,
                    )  # fmt: skip
                    answer = (Path(work) / "resp.der").read_bytes() if done.returncode == 0 else b""
                self.send_response(200 if answer else 500)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.ocsp_port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.ocsp_url
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
