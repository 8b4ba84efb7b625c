"""An external RFC 3161 TSA as the source of the signature timestamps of
seals and PDF proofs: a second, independently configured `lre-signer` (its
own token, its own root CA) on a loopback port. Its tokens are checked and
embedded, openssl and the offline verifier accept them; when it is down the
next configured source stamps and the fallback is logged; a token signed by
another certificate than the configured one is refused."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typst
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.server.audit.seals import Provider, SealChecker
from lre.signer.app import Signer
from lre.signer.config import SignerSettings
from lre.signer.devsetup import DevPaths
from lre.signer.errors import NoTimestampSource
from lre.signer.tsa_external import ExternalTsa, ExternalTsaConfig, ExternalTsaError
from lre.verify import cms as verify_cms
from lre.verify import pdf as pdf_check
from tests.support.external_tsa import ExternalTsaPki, make_external_tsa, serving
from tests.support.openssl_tsa import OpensslTsa
from tests.support.pki import openssl


@pytest.fixture(scope="module")
def qtsp(tmp_path_factory: pytest.TempPathFactory) -> ExternalTsaPki:
    return make_external_tsa(tmp_path_factory.mktemp("qtsp"))


@pytest.fixture
def qtsp_url(qtsp: ExternalTsaPki, tmp_path: Path) -> Iterator[str]:
    with serving(qtsp, tmp_path / "qtsp.log") as url:
        yield url


def _settings(
    base: SignerSettings,
    dev_var: DevPaths,
    qtsp: ExternalTsaPki,
    tmp_path: Path,
    url: str,
    sources: str,
    certificate_file: Path | None = None,
) -> SignerSettings:
    tsas = tmp_path / "external-tsas.toml"
    tsas.write_text(
        f'[tsa.qtsp]\nurl = "{url}"\n'
        f'certificate_file = "{certificate_file or qtsp.chain}"\ntimeout_s = 2.0\n',
        encoding="utf-8",
    )
    # B-LT: the CRLs of the provider's CA and of the external TSA's.
    crls = tmp_path / "crls.pem"
    crls.write_bytes((dev_var.pki / "crls.pem").read_bytes() + qtsp.crl.read_bytes())
    return dataclasses.replace(
        base, timestamp_sources=sources, external_tsa_file=tsas, crl_file=crls
    )


def _signer(settings: SignerSettings) -> Signer:
    signer = Signer(settings)
    assert signer.check_health()
    return signer


def _token(signed_data_der: bytes) -> cms.ContentInfo:
    """The signature timestamp token of a CMS SignedData."""
    (signer_info,) = cms.ContentInfo.load(signed_data_der)["content"]["signer_infos"]
    for attribute in signer_info["unsigned_attrs"]:
        if attribute["type"].native == "signature_time_stamp_token":
            token: cms.ContentInfo = attribute["values"][0]
            return token
    raise AssertionError("no signature timestamp")


def _stamped_by(token: cms.ContentInfo) -> str:
    (signer_info,) = token["content"]["signer_infos"]
    serial = signer_info["sid"].chosen["serial_number"].native
    for certificate in token["content"]["certificates"]:
        if certificate.chosen.serial_number == serial:
            return str(certificate.chosen.subject.native["common_name"])
    raise AssertionError("the token does not carry its TSA's certificate")


def _openssl_checks(seal: bytes, dev_var: DevPaths, qtsp: ExternalTsaPki, tmp_path: Path) -> None:
    """`openssl cms -verify` of the seal (CRLs from the seal itself) and
    `openssl ts -verify` of its timestamp over the signature value."""
    (tmp_path / "seal.p7m").write_bytes(seal)
    roots = tmp_path / "roots.pem"
    roots.write_bytes((dev_var.pki / "root-ca.pem").read_bytes() + qtsp.root_ca.read_bytes())
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", tmp_path / "seal.p7m",
        "-CAfile", roots, "-crl_check", "-out", tmp_path / "content",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    (signer_info,) = cms.ContentInfo.load(seal)["content"]["signer_infos"]
    (tmp_path / "token.der").write_bytes(_token(seal).dump())
    stamped = openssl(
        "ts", "-verify", "-digest", hashlib.sha256(signer_info["signature"].native).hexdigest(),
        "-in", tmp_path / "token.der", "-token_in",
        "-CAfile", qtsp.root_ca, "-untrusted", qtsp.tsa_cert,
    )  # fmt: skip
    assert "Verification: OK" in stamped.stdout, stamped.stdout + stamped.stderr


def test_seals_and_pdfs_carry_the_external_tsas_timestamps_and_fall_back_when_it_is_down(
    dev_var: DevPaths,
    signer_settings: SignerSettings,
    qtsp: ExternalTsaPki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serving(qtsp, tmp_path / "qtsp.log") as url:
        settings = _settings(signer_settings, dev_var, qtsp, tmp_path, url, "qtsp,builtin")
        signer = _signer(settings)
        try:
            seal, _ = signer.sealer.seal(b'{"evidence":1}')
            assert _stamped_by(_token(seal)) == "Test QTSP TSA"
            _openssl_checks(seal, dev_var, qtsp, tmp_path)

            # The PDF proof: its DSS carries the external TSA's chain and its CRL,
            # and the offline verifier finds it valid and stamped by that TSA.
            data = signer.pdf_digest.validation_data()
            assert qtsp.tsa_cert.read_bytes() in b"".join(
                x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM)
                for d in data.certificates
            )
            pdf = typst.compile(b"Preuve", pdf_standards=["a-3u"])
            assert isinstance(pdf, bytes)
            signed = signer.pades.sign(pdf)
            anchors = [
                asn1_x509.Certificate.load(
                    x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(
                        serialization.Encoding.DER
                    )
                )
                for p in (dev_var.pki / "root-ca.pem", qtsp.root_ca)
            ]
            checked = pdf_check.check_signature(signed, anchors, [])
            assert checked.tsa.subject.native["common_name"] == "Test QTSP TSA"
            assert checked.anchored
        except BaseException:
            signer.close()
            raise

    # The external TSA is down: the built-in one stamps, and that is logged.
    with caplog.at_level(logging.WARNING, logger="lre.signer.timesources"):
        seal, _ = signer.sealer.seal(b'{"evidence":2}')
    assert _stamped_by(_token(seal)) == "LRE Development TSA"
    failed = [r for r in caplog.records if r.getMessage() == "timestamp source failed"]
    assert failed and failed[0].__dict__["source"] == "qtsp"
    assert failed[0].__dict__["fallback"] == "builtin"
    assert "unreachable" in failed[0].__dict__["reason"]
    assert any(
        r.getMessage() == "signature timestamped by a fallback source" for r in caplog.records
    )
    # The next seal does not wait on it again: passed over for retry_after_s.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lre.signer.timesources"):
        seal, _ = signer.sealer.seal(b'{"evidence":2.5}')
    assert _stamped_by(_token(seal)) == "LRE Development TSA"
    assert not [r for r in caplog.records if r.getMessage() == "timestamp source failed"]
    signer.close()

    # With no fallback configured, nothing is sealed, and the reason says why.
    only = _signer(dataclasses.replace(settings, timestamp_sources="qtsp"))
    try:
        with pytest.raises(NoTimestampSource, match="qtsp: unreachable"):
            only.sealer.seal(b'{"evidence":3}')
    finally:
        only.close()


def test_a_token_signed_by_another_certificate_than_the_configured_one_is_refused(
    dev_var: DevPaths,
    signer_settings: SignerSettings,
    qtsp: ExternalTsaPki,
    qtsp_url: str,
    tmp_path: Path,
) -> None:
    # The provider expects the TSA certificate of its own CA at that URL; the
    # TSA there signs with another: its tokens are not used.
    wrong = tmp_path / "wrong-chain.pem"
    wrong.write_bytes(
        (dev_var.pki / "timestamping.pem").read_bytes() + (dev_var.pki / "root-ca.pem").read_bytes()
    )
    settings = _settings(signer_settings, dev_var, qtsp, tmp_path, qtsp_url, "qtsp", wrong)
    signer = _signer(settings)
    try:
        with pytest.raises(NoTimestampSource, match="not signed by the configured certificate"):
            signer.sealer.seal(b'{"evidence":4}')
    finally:
        signer.close()


class _Front:
    """A loopback HTTP front to the external TSA that wants HTTP Basic
    credentials (401 without them) and, when ``stall``, never answers in time."""

    def __init__(self, target: str) -> None:
        front = self
        self.stall = False
        self.seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                front.seen.append(self.headers.get("Authorization", ""))
                if front.stall:
                    time.sleep(3)  # the client gave up after its timeout_s
                    return
                if (
                    self.headers.get("Authorization")
                    != "Basic " + base64.b64encode(b"provider-42:s3cret").decode()
                ):
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(
                    target, data=body, headers={"Content-Type": "application/timestamp-query"}
                )
                with urllib.request.urlopen(request, timeout=10) as reply:
                    answer = reply.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_credentials_are_sent_and_a_refusal_or_a_timeout_falls_back(
    qtsp: ExternalTsaPki, qtsp_url: str, tmp_path: Path
) -> None:
    front = _Front(qtsp_url)
    try:
        password = tmp_path / "qtsp.password"
        password.write_text("s3cret\n", encoding="utf-8")
        config = ExternalTsaConfig(
            "qtsp", front.url, qtsp.chain, timeout_s=1.0, username="provider-42",
            password_file=password,
        )  # fmt: skip
        digest = hashlib.sha256(b"signature value").digest()
        token = cms.ContentInfo.load(ExternalTsa(config).timestamp_digest(digest))
        assert _stamped_by(token) == "Test QTSP TSA"
        assert front.seen[-1].startswith("Basic ")

        wrong = tmp_path / "wrong.password"
        wrong.write_text("guess\n", encoding="utf-8")
        refused = ExternalTsa(dataclasses.replace(config, password_file=wrong))
        with pytest.raises(ExternalTsaError, match="answered HTTP 401"):
            refused.timestamp_digest(digest)

        front.stall = True
        started = time.monotonic()
        with pytest.raises(ExternalTsaError, match="unreachable"):
            ExternalTsa(config).timestamp_digest(digest)
        assert time.monotonic() - started < 2.5  # timeout_s, not the TSA's pace
    finally:
        front.close()


def test_an_rsa_tsa_of_another_implementation_stamps_and_every_verifier_accepts_it(
    dev_var: DevPaths, signer_settings: SignerSettings, tmp_path: Path
) -> None:
    """OpenSSL's TSA (`openssl ts -reply`, RSA) as the external TSA: its
    tokens are checked and embedded, and `openssl`, `lre-verify`'s checks and
    `verify-log`'s seal checker all accept the seal."""
    other = OpensslTsa(tmp_path / "openssl-tsa")
    with other.serving() as url:
        tsas = tmp_path / "tsas.toml"
        tsas.write_text(
            f'[tsa.openssl]\nurl = "{url}"\ncertificate_file = "{other.chain}"\n',
            encoding="utf-8",
        )
        crls = tmp_path / "crls.pem"
        crls.write_bytes((dev_var.pki / "crls.pem").read_bytes() + other.crl.read_bytes())
        signer = _signer(
            dataclasses.replace(
                signer_settings,
                timestamp_sources="openssl",
                external_tsa_file=tsas,
                crl_file=crls,
            )
        )
        try:
            document = b'{"evidence":5}'
            seal, _ = signer.sealer.seal(document)
        finally:
            signer.close()
    assert _stamped_by(_token(seal)) == "OpenSSL Test TSA"

    roots = tmp_path / "roots.pem"
    roots.write_bytes((dev_var.pki / "root-ca.pem").read_bytes() + other.root_ca.read_bytes())
    (tmp_path / "seal.p7m").write_bytes(seal)
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", tmp_path / "seal.p7m",
        "-CAfile", roots, "-crl_check", "-out", tmp_path / "content",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr

    # lre-verify's CAdES checks: the timestamp over the signature, by an RSA TSA.
    loaded = verify_cms.load(seal)
    stamp = verify_cms.check_timestamp(loaded, [])
    assert stamp.tsa.subject.native["common_name"] == "OpenSSL Test TSA"

    # verify-log's: the provider declares the OpenSSL TSA's certificate.
    declared = tmp_path / "provider.pem"
    declared.write_bytes(
        (dev_var.pki / "seal.pem").read_bytes() + (other.root / "tsa.pem").read_bytes()
    )
    checker = SealChecker(roots, Provider(declared))
    assert checker.problem(seal, document) is None
