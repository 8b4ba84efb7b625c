"""PAdES signing in process over SoftHSM, both ways: the whole PDF
(lre.signer.pades, SignPdf) and a digest (lre.signer.pdf_digest,
SignPdfDigest). The CRLs they embed or name come from the CRL file, read
again when it changes, and a signature whose chain cannot be shown valid now
is refused rather than made without its validation data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import typst
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import DocumentSecurityStore

from lre.signer import pki
from lre.signer.app import Signer
from lre.signer.config import SignerSettings
from lre.signer.devsetup import DevPaths
from lre.signer.errors import BadPdf, StaleValidationData, ValidationDataUnavailable


@pytest.fixture
def crl_file(tmp_path: Path) -> Path:
    return tmp_path / "crls.pem"


@pytest.fixture
def signer(dev_var: DevPaths, signer_settings: SignerSettings, crl_file: Path) -> Iterator[Signer]:
    signer = Signer(dataclasses.replace(signer_settings, crl_file=crl_file))
    assert signer.check_health()
    yield signer
    signer.close()


@pytest.fixture(scope="module")
def pdf() -> bytes:
    made = typst.compile(b"Bonjour", pdf_standards=["a-3u"])
    assert isinstance(made, bytes)
    return made


def _ca(dev_var: DevPaths) -> pki.LocalCA:
    return pki.LocalCA.load(dev_var.pki / "root-ca.key", dev_var.pki / "root-ca.pem")


def _write_crl(path: Path, ca: pki.LocalCA, next_update: dt.datetime) -> None:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(next_update - dt.timedelta(days=30))
        .next_update(next_update)
        .sign(ca.key, hashes.SHA256())
    )
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def test_a_missing_or_stale_crl_refuses_and_a_new_one_is_picked_up(
    signer: Signer, dev_var: DevPaths, crl_file: Path, pdf: bytes
) -> None:
    with pytest.raises(ValidationDataUnavailable, match="cannot be read"):
        signer.pades.sign(pdf)

    now = dt.datetime.now(dt.UTC)
    _write_crl(crl_file, _ca(dev_var), now - dt.timedelta(days=1))
    with pytest.raises(ValidationDataUnavailable, match="CRL"):
        signer.pades.sign(pdf)

    crl_file.unlink()
    crl_file.write_bytes(_ca(dev_var).issue_crl().public_bytes(serialization.Encoding.PEM))
    signed = signer.pades.sign(pdf)
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(signed)))
    embedded = {c.get_object().data for c in dss.crls}
    expected = x509.load_pem_x509_crl(crl_file.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert expected in embedded


def test_the_digest_signer_names_its_validation_data_and_refuses_an_older_one(
    signer: Signer, dev_var: DevPaths, crl_file: Path
) -> None:
    digest = hashlib.sha256(b"byte ranges").digest()
    with pytest.raises(ValidationDataUnavailable, match="cannot be read"):
        signer.pdf_digest.validation_data()

    crl_file.write_bytes(_ca(dev_var).issue_crl().public_bytes(serialization.Encoding.PEM))
    first = signer.pdf_digest.validation_data()
    crl_der = x509.load_pem_x509_crl(crl_file.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert first.crls == (crl_der,)
    seal_der = (
        x509.load_pem_x509_certificate((dev_var.pki / "seal.pem").read_bytes())
    ).public_bytes(serialization.Encoding.DER)
    assert first.certificates[0] == seal_der and len(first.certificates) >= 3
    assert signer.pdf_digest.validation_data() == first  # the same until the file changes
    assert signer.pdf_digest.sign(digest, first.id).startswith(b"\x30")

    # A CRL renewed: the new data has another id, and a PDF naming the old one is refused.
    crl_file.unlink()
    crl_file.write_bytes(_ca(dev_var).issue_crl(days=2).public_bytes(serialization.Encoding.PEM))
    second = signer.pdf_digest.validation_data()
    assert second.id != first.id and second.crls != first.crls
    with pytest.raises(StaleValidationData):
        signer.pdf_digest.sign(digest, first.id)
    assert signer.pdf_digest.sign(digest, second.id).startswith(b"\x30")
    with pytest.raises(ValueError, match="SHA-256"):
        signer.pdf_digest.sign(digest[:20], second.id)


def test_a_revoked_seal_certificate_is_refused(
    signer: Signer, dev_var: DevPaths, crl_file: Path, pdf: bytes
) -> None:
    ca = _ca(dev_var)
    seal = x509.load_pem_x509_certificate((dev_var.pki / "seal.pem").read_bytes())
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(seal.serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
        .sign(ca.key, hashes.SHA256())
    )
    crl_file.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValidationDataUnavailable, match="revoked"):
        signer.pades.sign(pdf)
    with pytest.raises(ValidationDataUnavailable, match="revoked"):
        signer.pdf_digest.validation_data()


@pytest.mark.parametrize(
    "data", [b"%PDF-1.7\n1 0 obj<<>>endobj\n", b"%PDF-" + bytes(1000)], ids=["no-trailer", "zeros"]
)
def test_unreadable_pdfs_are_bad_pdfs(signer: Signer, data: bytes) -> None:
    with pytest.raises(BadPdf):
        signer.pades.sign(data)
