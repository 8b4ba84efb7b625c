"""PDF proofs end to end: rendered by lre.server.proofs, signed by the real signer
process (PAdES B-LT through SoftHSM), checked by poppler's pdfsig, pyHanko's
validator and openssl on the attachments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import (
    EvidenceDocument,
    IssuerDetails,
    PartDigest,
    PartyDetails,
)
from lre.server.domain.letters import EvidenceEvent
from lre.server.proofs import ProofInputError, attachment_names, proof_pdf, render_proof
from lre.server.proofs.document import read
from lre.server.proofs.events import TEXTS
from lre.signer import pki
from lre.signer.app import Signer
from lre.signer.config import SignerSettings
from lre.signer.service import MAX_PDF_BYTES
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl
from tests.support.signer import SignerProcess

PARTY_ID = "7d1c0000-0000-4000-8000-000000000001"
SUBMITTED = dt.datetime(2026, 11, 28, 16, 5, 7, 250000, tzinfo=dt.UTC)
REASONS = {
    EvidenceEvent.SUBMISSION_REJECTION: ("no consent from a consumer", "consent_missing"),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: ("550 5.1.1 mailbox unknown", "bounced"),
    EvidenceEvent.CONSIGNMENT_REJECTION: ("refused by the recipient", "refused"),
}


@dataclass(frozen=True)
class Proof:
    event: EvidenceEvent
    evidence: bytes
    seal: bytes
    pdf: Path


@pytest.fixture(scope="module")
def verifiers() -> None:
    """poppler-utils and NSS's certutil: required under CI, else these tests skip, saying so."""
    missing = [
        tool
        for tool in ("pdfsig", "pdfdetach", "pdftotext", "pdfinfo", "pdffonts", "certutil")
        if shutil.which(tool) is None
    ]
    if missing:
        packages = "poppler-utils, libnss3-tools"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} required under CI (Debian packages {packages})")
        pytest.skip(f"{missing} not installed (Debian packages {packages}): proofs not checked")


@pytest.fixture(scope="module")
def client(signer_process: SignerProcess) -> Iterator[SignerClient]:
    client = SignerClient(signer_process.grpc_address, timeout_s=30)
    yield client
    client.close()


def _seal_certificate(client: SignerClient) -> bytes:
    return client.certificate_chain("seal")[0]


def _evidence(event: EvidenceEvent, certificate: bytes) -> bytes:
    reason, code = REASONS.get(event, (None, None))
    return EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=event,
        event_time=dt.datetime.now(dt.UTC),
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of("LRE Test Provider SAS", certificate),
        sender=PartyDetails("Société Dupont & Fils", "courrier@dupont.example", PARTY_ID),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", PARTY_ID),
        letter_id=f"letters/{uuid.uuid4()}",
        submission_time=SUBMITTED,
        parts=(
            PartDigest("mise-en-demeure.pdf", "application/pdf", 183422, "ab" * 32),
            PartDigest("annexe n°1.pdf", "application/pdf", 40211, "cd" * 32),
        ),
        reason=reason,
        reason_code=code,
    ).to_json()


@pytest.fixture(scope="module")
def proofs(
    client: SignerClient, tmp_path_factory: pytest.TempPathFactory, verifiers: None
) -> dict[EvidenceEvent, Proof]:
    """One proof per event, rendered and signed once for the module."""
    folder = tmp_path_factory.mktemp("proofs")
    made = {}
    for event in EvidenceEvent:
        evidence = _evidence(event, _seal_certificate(client))
        seal = client.seal(evidence)
        pdf = folder / f"{event.value}.pdf"
        pdf.write_bytes(proof_pdf(evidence, seal, client))
        made[event] = Proof(event, evidence, seal, pdf)
    return made


@pytest.fixture(scope="module")
def nss_db(
    signer_process: SignerProcess, tmp_path_factory: pytest.TempPathFactory, verifiers: None
) -> str:
    """An NSS database trusting the development root, for pdfsig's certificate check."""
    folder = tmp_path_factory.mktemp("nss")
    database = f"sql:{folder}"
    for command in (
        ["certutil", "-N", "-d", database, "--empty-password"],
        ["certutil", "-A", "-d", database, "-n", "lre-dev-root", "-t", "C,C,C",
         "-i", str(signer_process.root_ca)],
    ):  # fmt: skip
        result = _run(*command)
        assert result.returncode == 0, result.stderr
    return database


def _root(signer_process: SignerProcess) -> asn1_x509.Certificate:
    _, _, der = pem.unarmor(signer_process.root_ca.read_bytes())
    return asn1_x509.Certificate.load(der)


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_pdfsig_finds_the_signature_valid_and_trusted_over_the_signed_revision(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent, nss_db: str
) -> None:
    proof = proofs[event]
    result = _run("pdfsig", "-nssdir", nss_db, proof.pdf)
    assert result.returncode == 0, result.stderr
    assert "Signature Validation: Signature is Valid." in result.stdout, result.stdout
    assert "Certificate Validation: Certificate is Trusted." in result.stdout, result.stdout
    assert "Signer Certificate Common Name: LRE Development Seal" in result.stdout
    assert "Signature Type: ETSI.CAdES.detached" in result.stdout
    # The signed ranges cover the whole signed revision: everything from the
    # start to the end of the signature's revision but the signature itself.
    # pdfsig reports "Not total document signed" because the B-LT validation
    # data (the DSS) is an incremental update after that revision, which the
    # pyHanko test below checks is nothing but validation data.
    ranges = re.search(r"Signed Ranges: \[0 - (\d+)\], \[(\d+) - (\d+)\]", result.stdout)
    assert ranges is not None, result.stdout
    data = proof.pdf.read_bytes()
    hole_start, hole_end, signed_end = (int(g) for g in ranges.groups())
    assert data[hole_start : hole_start + 1] == b"<" and data[hole_end - 1 : hole_end] == b">"
    assert data[:signed_end].rstrip().endswith(b"%%EOF")
    assert signed_end < len(data)  # the DSS revision follows


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_pyhanko_finds_it_intact_valid_timestamped_and_b_lt(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent, signer_process: SignerProcess
) -> None:
    with proofs[event].pdf.open("rb") as stream:
        reader = PdfFileReader(stream)
        (signature,) = reader.embedded_signatures
        dss = DocumentSecurityStore.read_dss(reader)
        assert len(dss.crls) >= 1 and len(dss.certs) >= 2
        # Validated from what the PDF carries alone: no fetching, and a
        # revocation check required for every certificate of both chains.
        context = dss.as_validation_context(
            {
                "trust_roots": [_root(signer_process)],
                "allow_fetching": False,
                "revocation_mode": "require",
            }
        )
        status = validate_pdf_signature(signature, context, ts_validation_context=context)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.bottom_line
        assert status.timestamp_validity is not None
        assert status.timestamp_validity.intact and status.timestamp_validity.valid
        assert status.timestamp_validity.trusted
        assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
        # What follows the signature is validation data only.
        assert status.modification_level == ModificationLevel.LTA_UPDATES
        assert status.signing_cert.subject.native["common_name"] == "LRE Development Seal"


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_the_attachments_are_the_evidence_and_its_seal_and_the_seal_verifies(
    proofs: dict[EvidenceEvent, Proof],
    event: EvidenceEvent,
    signer_process: SignerProcess,
    tmp_path: Path,
) -> None:
    proof = proofs[event]
    result = _run("pdfdetach", "-saveall", "-o", tmp_path, proof.pdf)
    assert result.returncode == 0, result.stderr
    json_name, seal_name = (
        f"evidence-{_evidence_id(proof)}.json",
        f"evidence-{_evidence_id(proof)}.p7m",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([json_name, seal_name])
    assert (tmp_path / json_name).read_bytes() == proof.evidence
    assert (tmp_path / seal_name).read_bytes() == proof.seal
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", tmp_path / seal_name,
        "-CAfile", signer_process.root_ca, "-out", tmp_path / "verified.json",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert (tmp_path / "verified.json").read_bytes() == proof.evidence


def _evidence_id(proof: Proof) -> str:
    match = re.search(rb'"evidenceId":"([^"]+)"', proof.evidence)
    assert match is not None
    return match.group(1).decode()


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_the_page_says_what_happened_in_both_languages_as_pdf_a_with_fonts_embedded(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent
) -> None:
    proof = proofs[event]
    text = _run("pdftotext", proof.pdf, "-").stdout
    flat = " ".join(text.split())
    titles = TEXTS[event].title
    for expected in (
        titles.fr,
        titles.en,
        "Société Dupont & Fils",
        "courrier@dupont.example",
        "Élodie Martin-Lefèvre",
        "elodie@example.org",
        _evidence_id(proof),
        "heure de Paris",
        "Paris time",
        # Deposit time, in Paris time (UTC+1 in November) and UTC.
        "28 novembre 2026, 17:05:07,250 (UTC+01:00)",
        "2026-11-28 16:05:07.250 UTC",
        "Portée juridique",
        "Legal meaning",
    ):
        assert expected in flat, expected
    # Digests wrap across lines.
    assert "ab" * 32 in "".join(text.split()) and "cd" * 32 in "".join(text.split())
    letter = re.search(rb'"letterId":"([^"]+)"', proof.evidence)
    assert letter is not None and letter.group(1).decode() in flat
    # The article, once in each language.
    assert len(re.findall(r"\barticles? (R53-[23]|L100)\b", flat)) >= 2
    info = _run("pdfinfo", proof.pdf).stdout
    assert re.search(r"Pages:\s+1\n", info), info
    metadata = _run("pdfinfo", "-meta", proof.pdf).stdout
    assert re.search(r"pdfaid:part[>=\"]+3", metadata), metadata
    fonts = _run("pdffonts", proof.pdf).stdout.splitlines()[2:]
    assert fonts and all(" yes yes yes " in line for line in fonts), fonts


def test_a_changed_byte_in_the_signed_range_is_rejected_by_pdfsig_and_pyhanko(
    proofs: dict[EvidenceEvent, Proof], tmp_path: Path, signer_process: SignerProcess, nss_db: str
) -> None:
    data = bytearray(proofs[EvidenceEvent.SUBMISSION_ACCEPTANCE].pdf.read_bytes())
    # The binary comment on the second line: inside the first signed range,
    # and a change there leaves the file readable.
    assert data[9:10] == b"%"
    data[11] ^= 0x01
    changed = tmp_path / "changed.pdf"
    changed.write_bytes(bytes(data))

    result = _run("pdfsig", "-nssdir", nss_db, changed)
    assert "Signature is Valid" not in result.stdout
    assert "Signature Validation: Digest Mismatch." in result.stdout, result.stdout

    with changed.open("rb") as stream:
        reader = PdfFileReader(stream)
        (signature,) = reader.embedded_signatures
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(
            {"trust_roots": [_root(signer_process)], "allow_fetching": False}
        )
        status = validate_pdf_signature(signature, context)
        assert not status.intact and not status.bottom_line


def test_a_seal_over_another_evidence_makes_no_proof(client: SignerClient) -> None:
    certificate = _seal_certificate(client)
    evidence = _evidence(EvidenceEvent.SUBMISSION_ACCEPTANCE, certificate)
    other_seal = client.seal(_evidence(EvidenceEvent.SUBMISSION_ACCEPTANCE, certificate))
    with pytest.raises(ProofInputError, match="does not encapsulate"):
        render_proof(evidence, other_seal)
    with pytest.raises(ProofInputError):
        render_proof(evidence, b"not a seal")
    with pytest.raises(ProofInputError, match="format"):
        not_evidence = b'{"format":"other"}'
        render_proof(not_evidence, client.seal(not_evidence))


def test_the_attachment_names_follow_the_evidence_id(
    proofs: dict[EvidenceEvent, Proof],
) -> None:
    proof = proofs[EvidenceEvent.CONTENT_HANDOVER]
    names = attachment_names(read(proof.evidence, proof.seal))
    assert names == (f"evidence-{_evidence_id(proof)}.json", f"evidence-{_evidence_id(proof)}.p7m")


@pytest.mark.parametrize(
    ("pdf", "message"),
    [
        (b"", "must not be empty"),
        (b"hello, not a PDF", "must start with %PDF-"),
        (b"%PDF-1.7\nnothing else", "not a readable PDF"),
        (b"%PDF-1.7\n" + bytes(MAX_PDF_BYTES), "at most"),
    ],
    ids=["empty", "not-pdf", "truncated", "too-large"],
)
def test_sign_pdf_refuses_what_is_not_a_pdf_it_can_sign(
    signer_process: SignerProcess, pdf: bytes, message: str
) -> None:
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.SignPdf(signing_pb2.SignPdfRequest(pdf=pdf), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (raised.value.details() or "")


def _timestamp_time(seal: bytes) -> dt.datetime:
    """genTime of the seal's signature timestamp, read here with asn1crypto alone."""
    signer_info = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]
    (token,) = (
        a["values"][0]
        for a in signer_info["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    )
    info = token["content"]["encap_content_info"]["content"].parsed
    when: dt.datetime = info["gen_time"].native
    return when.astimezone(dt.UTC)


def test_the_time_shown_is_the_qualified_timestamp_of_the_seal(
    proofs: dict[EvidenceEvent, Proof],
) -> None:
    proof = proofs[EvidenceEvent.CONSIGNMENT_ACCEPTANCE]
    flat = " ".join(_run("pdftotext", proof.pdf, "-").stdout.split())
    when = _timestamp_time(proof.seal)
    paris = when.astimezone(ZoneInfo("Europe/Paris"))
    assert f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d} UTC" in flat
    offset = paris.strftime("%z")
    assert (
        f"{paris:%H:%M:%S},{paris.microsecond // 1000:03d} (UTC{offset[:3]}:{offset[3:]})" in flat
    )
    # The development TSA is not qualified, and the proof does not pretend otherwise.
    assert "Horodatage électronique (non qualifié)" in flat


def test_a_qualified_timestamp_is_called_qualified(
    signer_settings: SignerSettings, tmp_path: Path, verifiers: None
) -> None:
    """The development TSA is not qualified; one configured so (qcStatements
    esi4-qtstStatement-1 in its tokens) is named qualified on the proof."""
    crl_file = tmp_path / "crls.pem"
    crl_file.write_bytes(signer_settings.crl_file.read_bytes())
    signer = Signer(dataclasses.replace(signer_settings, qualified=True, crl_file=crl_file))
    try:
        assert signer.check_health()
        evidence = _evidence(
            EvidenceEvent.SUBMISSION_ACCEPTANCE, signer.certificate_chain(pki.SEAL)[0]
        )
        seal, _ = signer.sealer.seal(evidence)
        pdf = tmp_path / "proof.pdf"
        pdf.write_bytes(signer.pades.sign(render_proof(evidence, seal)))
    finally:
        signer.close()
    text = " ".join(_run("pdftotext", pdf, "-").stdout.split())
    assert "Horodatage électronique qualifié" in text
    assert "Qualified electronic timestamp" in text
    assert "non qualifié" not in text


def test_markup_in_a_name_is_printed_as_text(
    client: SignerClient, tmp_path: Path, verifiers: None
) -> None:
    name = '<img src="http://127.0.0.1:9/x.png"> <b>Dupont</b> & <i>Fils</i>'
    evidence = EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=EvidenceEvent.SUBMISSION_ACCEPTANCE,
        event_time=dt.datetime.now(dt.UTC),
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of("LRE Test Provider SAS", _seal_certificate(client)),
        sender=PartyDetails(name, "courrier@dupont.example", PARTY_ID),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", PARTY_ID),
        letter_id=f"letters/{uuid.uuid4()}",
        submission_time=SUBMITTED,
        parts=(),
    ).to_json()
    pdf = tmp_path / "proof.pdf"
    pdf.write_bytes(render_proof(evidence, client.seal(evidence)))
    text = " ".join(_run("pdftotext", pdf, "-").stdout.split())
    assert '<img src="http://127.0.0.1:9/x.png"> <b>Dupont</b> & <i>Fils</i>' in text
