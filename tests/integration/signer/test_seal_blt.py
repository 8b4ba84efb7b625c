"""CAdES B-LT evidence seals: the SignedData carries both chains and the CAs'
CRLs, OpenSSL checks revocation from what the seal carries alone, and the
sealer refuses rather than seal without a current, non-revoking CRL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lre.signer import pki
from lre.signer.app import Signer
from lre.signer.config import SignerSettings
from lre.signer.devsetup import DevPaths
from lre.signer.errors import ValidationDataUnavailable
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl
from tests.support.signer import SignerProcess


def test_the_seal_carries_both_chains_and_the_crls_and_openssl_checks_them(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        reply = stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=b"{}"), timeout=10)
    signed_data = cms.ContentInfo.load(reply.signed_data)["content"]
    subjects = {c.chosen.subject.native["common_name"] for c in signed_data["certificates"]}
    pki_dir = signer_process.paths.pki
    for name in ("seal.pem", "timestamping.pem", "root-ca.pem"):
        cert = x509.load_pem_x509_certificate((pki_dir / name).read_bytes())
        assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value in subjects
    published = x509.load_pem_x509_crl((pki_dir / "crls.pem").read_bytes())
    embedded = [c.chosen.dump() for c in signed_data["crls"]]
    assert embedded == [published.public_bytes(serialization.Encoding.DER)]

    sealed = tmp_path / "evidence.p7m"
    sealed.write_bytes(reply.signed_data)
    # -crl_check with no -CRLfile: the CRL OpenSSL needs is the seal's own.
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed,
        "-CAfile", signer_process.root_ca, "-crl_check",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout == "{}"


@pytest.fixture
def crl_file(tmp_path: Path) -> Path:
    return tmp_path / "crls.pem"


@pytest.fixture
def signer(dev_var: DevPaths, signer_settings: SignerSettings, crl_file: Path) -> Iterator[Signer]:
    signer = Signer(dataclasses.replace(signer_settings, crl_file=crl_file))
    assert signer.check_health()
    yield signer
    signer.close()


def _crl(ca: pki.LocalCA, next_update: dt.datetime, revoked: int | None = None) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(min(next_update, dt.datetime.now(dt.UTC)) - dt.timedelta(days=1))
        .next_update(next_update)
    )
    if revoked is not None:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked)
            .revocation_date(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_no_current_or_a_revoking_crl_refuses_to_seal(
    signer: Signer, dev_var: DevPaths, crl_file: Path
) -> None:
    ca = pki.LocalCA.load(dev_var.pki / "root-ca.key", dev_var.pki / "root-ca.pem")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(ValidationDataUnavailable, match="cannot be read"):
        signer.sealer.seal(b"{}")

    crl_file.write_bytes(_crl(ca, now - dt.timedelta(hours=1)))
    with pytest.raises(ValidationDataUnavailable, match="no current CRL"):
        signer.sealer.seal(b"{}")

    other = pki.LocalCA.create("Another CA")
    crl_file.write_bytes(_crl(other, now + dt.timedelta(days=1)))
    with pytest.raises(ValidationDataUnavailable, match="no current CRL"):
        signer.sealer.seal(b"{}")

    for name in ("seal.pem", "timestamping.pem"):
        serial = x509.load_pem_x509_certificate((dev_var.pki / name).read_bytes()).serial_number
        crl_file.write_bytes(_crl(ca, now + dt.timedelta(days=1), revoked=serial))
        with pytest.raises(ValidationDataUnavailable, match="revoked"):
            signer.sealer.seal(b"{}")

    crl_file.write_bytes(_crl(ca, now + dt.timedelta(days=1)))
    sealed, _ = signer.sealer.seal(b"{}")
    assert len(cms.ContentInfo.load(sealed)["content"]["crls"]) == 1
