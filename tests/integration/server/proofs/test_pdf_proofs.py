"""PDF proofs end to end: rendered by lre.server.proofs (Typst), signed in one
pass with the real signer process (PAdES B-LT through SoftHSM), and checked on
the signed file by independent tools: poppler (pdfsig, pdftotext, pdfinfo,
pdffonts, pdfdetach), qpdf, pyHanko's validator, and openssl on the attachments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
import typst
from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from lre.server.adapters.signer import PdfValidationData, SignerClient
from lre.server.domain.errors import DependencyUnavailable
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
from lre.server.proofs.pades import ProofSigner
from lre.server.proofs.render import FONTS, PDF_STANDARDS, printable
from lre.signer import pki
from lre.signer.app import Signer
from lre.signer.config import SignerSettings
from lre.signer.service import MAX_PDF_BYTES
from lre.v1 import signing_pb2, signing_pb2_grpc
from lre.verify import pdf as verify_pdf
from lre.verify.cms import SealProblem
from tests.support.doctored import OVERLAY_TEXT, with_overlay, with_title, with_xmp_title
from tests.support.pki import openssl
from tests.support.signer import SignerProcess

PARTY_ID = "7d1c0000-0000-4000-8000-000000000001"
SUBMITTED = dt.datetime(2026, 11, 28, 16, 5, 7, 250000, tzinfo=dt.UTC)
NOTIFIED = dt.datetime(2026, 12, 6, 22, 30, 0, 125000, tzinfo=dt.UTC)  # 23:30 in Paris
REFERENCE = "6G7R2SAPSAWM"
REASONS = {
    EvidenceEvent.SUBMISSION_REJECTION: ("no consent from a consumer", "consent_missing"),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: (None, "notification_bounced"),
    EvidenceEvent.CONSIGNMENT_REJECTION: ("wrong address", "refused_by_recipient"),
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
        packages = "poppler-utils, libnss3-tools, qpdf"
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
    notification = event is EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE
    return EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=event,
        event_time=NOTIFIED if notification else dt.datetime.now(dt.UTC),
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
        letter_reference=REFERENCE,
        notification_time=NOTIFIED if event in AFTER_NOTIFICATION else None,
    ).to_json()


AFTER_NOTIFICATION = {
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
    EvidenceEvent.CONSIGNMENT_REJECTION,
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
    EvidenceEvent.CONTENT_HANDOVER,
}


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
def test_pdfsig_finds_the_signature_valid_trusted_and_over_the_whole_document(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent, nss_db: str
) -> None:
    proof = proofs[event]
    result = _run("pdfsig", "-nssdir", nss_db, proof.pdf)
    assert result.returncode == 0, result.stderr
    assert "Signature Validation: Signature is Valid." in result.stdout, result.stdout
    assert "Certificate Validation: Certificate is Trusted." in result.stdout, result.stdout
    assert "Signer Certificate Common Name: LRE Development Seal" in result.stdout
    assert "Signature Type: ETSI.CAdES.detached" in result.stdout
    # The validation data is in the signed revision: nothing follows the signature.
    assert "  - Total document signed" in result.stdout, result.stdout
    ranges = re.search(r"Signed Ranges: \[0 - (\d+)\], \[(\d+) - (\d+)\]", result.stdout)
    assert ranges is not None, result.stdout
    data = proof.pdf.read_bytes()
    hole_start, hole_end, signed_end = (int(g) for g in ranges.groups())
    assert data[hole_start : hole_start + 1] == b"<" and data[hole_end - 1 : hole_end] == b">"
    assert signed_end == len(data)


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_pyhanko_finds_it_intact_valid_timestamped_b_lt_and_covering_the_file(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent, signer_process: SignerProcess
) -> None:
    with proofs[event].pdf.open("rb") as stream:
        reader = PdfFileReader(stream)
        (signature,) = reader.embedded_signatures
        dss = DocumentSecurityStore.read_dss(reader)
        assert len(dss.crls) >= 1 and len(dss.certs) >= 3
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
        assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        assert status.modification_level == ModificationLevel.NONE
        assert status.signing_cert.subject.native["common_name"] == "LRE Development Seal"
        # The CMS carries the seal certificate once, and not the root (the verifier's own).
        certificates = [c.chosen for c in signature.signed_data["certificates"]]
        assert len({c.dump() for c in certificates}) == len(certificates)
        assert status.signing_cert.dump() in {c.dump() for c in certificates}
        assert all(c.self_signed == "no" for c in certificates)
        assert reader.input_version == (1, 7)


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
def test_the_page_says_what_happened_in_both_languages(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent
) -> None:
    proof = proofs[event]
    text = _run("pdftotext", proof.pdf, "-").stdout
    flat = " ".join(text.split())
    titles = TEXTS[event].title
    for expected in (
        titles.fr,
        titles.en,
        REFERENCE,
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
        # The check that catches a doctored proof, and what its answer means.
        "Total document signed",
        "Not total document signed",
    ):
        assert expected in flat, expected
    # Digests wrap across lines; hex as sha256sum prints it, base64 as in the evidence.
    packed = "".join(text.split())
    assert "ab" * 32 in packed and "cd" * 32 in packed
    assert "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=" in packed
    letter = re.search(rb'"letterId":"([^"]+)"', proof.evidence)
    assert letter is not None and letter.group(1).decode() in flat
    # The article, once in each language.
    assert len(re.findall(r"\barticles? (R53-[23]|L100)\b", flat)) >= 2
    # Every time printed says its zone.
    for time in re.findall(r"\d\d:\d\d:\d\d[.,]\d{3}\S*(?: \S+)?", flat):
        assert "UTC" in time, time


def test_the_notification_proof_states_the_last_day_of_the_window(
    proofs: dict[EvidenceEvent, Proof],
) -> None:
    flat = _text(proofs[EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE])
    # Notified 6 December 23:30 in Paris: days 7 to 21 December, the 21st included.
    assert "6 décembre 2026, 23:30:00,125 (UTC+01:00)" in flat
    assert "21 décembre 2026 à 23 h 59 min 59 s, heure de Paris (UTC+01:00)" in flat
    assert "21 December 2026, 23:59:59 Paris time" in flat
    assert "2026-12-21 22:59:59 UTC" in flat


@pytest.mark.parametrize("event", sorted(AFTER_NOTIFICATION, key=str), ids=lambda e: e.value)
def test_the_answers_state_when_the_recipient_was_notified_and_the_last_day(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent
) -> None:
    flat = _text(proofs[event])
    assert "Notification" in flat
    assert "6 décembre 2026, 23:30:00,125 (UTC+01:00)" in flat
    assert "2026-12-06 22:30:00.125 UTC" in flat
    assert "21 décembre 2026 à 23 h 59 min 59 s" in flat


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (EvidenceEvent.SUBMISSION_REJECTION, "n'ayant pas consenti à recevoir"),
        (EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE, "définitivement refusé le message"),
        (EvidenceEvent.CONSIGNMENT_REJECTION, "refus exprimé par le destinataire"),
    ],
    ids=lambda v: v.value if isinstance(v, EvidenceEvent) else "",
)
def test_reasons_are_in_words_with_their_code(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent, words: str
) -> None:
    flat = _text(proofs[event])
    stated, code = REASONS[event]
    assert words in flat and f"(code {code})" in flat
    if stated:
        assert f"« {stated} »" in flat


@pytest.mark.parametrize("event", list(EvidenceEvent), ids=lambda e: e.value)
def test_the_signed_file_is_tagged_pdf_a_3a_and_ua_1_with_consistent_metadata(
    proofs: dict[EvidenceEvent, Proof], event: EvidenceEvent
) -> None:
    proof = proofs[event]
    info = _run("pdfinfo", proof.pdf).stdout
    assert re.search(r"Pages:\s+1\n", info), info
    assert re.search(r"Tagged:\s+yes\n", info), info
    assert re.search(r"PDF version:\s+1\.7\n", info), info
    check = _run("qpdf", "--check", proof.pdf)
    assert check.returncode == 0 and "No syntax or stream encoding errors" in check.stdout, (
        check.stdout + check.stderr
    )
    fonts = _run("pdffonts", proof.pdf).stdout.splitlines()[2:]
    assert fonts and all(" yes yes yes " in line for line in fonts), fonts
    objects = _qpdf_objects(proof.pdf)
    trailer = _deref(objects, objects["trailer"])
    assert isinstance(trailer, dict)
    catalog = _deref(objects, trailer["/Root"])
    assert isinstance(catalog, dict)
    # No PDF 2.0 feature declared against the PDF/A-3 (PDF 1.7) claim.
    assert catalog.get("/Version", "/1.7") == "/1.7"
    assert str(catalog["/Lang"]).startswith("u:fr")
    mark_info = _deref(objects, catalog["/MarkInfo"])
    assert "/StructTreeRoot" in catalog and isinstance(mark_info, dict) and mark_info["/Marked"]
    intents = _deref(objects, catalog["/OutputIntents"])
    assert isinstance(intents, list) and len(intents) == 1
    intent = _deref(objects, intents[0])
    assert isinstance(intent, dict)
    assert intent["/S"] == "/GTS_PDFA1" and "/DestOutputProfile" in intent
    # The signature's widget is in the structure tree (PDF/UA: every annotation tagged).
    acroform = _deref(objects, catalog["/AcroForm"])
    assert isinstance(acroform, dict)
    fields = _deref(objects, acroform["/Fields"])
    assert isinstance(fields, list) and len(fields) == 1
    widget_ref = fields[0]
    widget = _deref(objects, widget_ref)
    tree = _deref(objects, catalog["/StructTreeRoot"])
    assert isinstance(widget, dict) and isinstance(tree, dict)
    nums = _deref(objects, tree["/ParentTree"])["/Nums"]  # type: ignore[index]
    form = _deref(objects, dict(zip(nums[::2], nums[1::2], strict=True))[widget["/StructParent"]])
    assert isinstance(form, dict) and form["/S"] == "/Form" and form["/Alt"]
    assert form["/K"]["/Obj"] == widget_ref  # type: ignore[index]
    page = _deref(objects, widget["/P"])
    assert isinstance(page, dict) and page["/Tabs"] == "/S"
    # Each attachment once, related to the document.
    related = _deref(objects, catalog["/AF"])
    assert isinstance(related, list)
    files = [f for f in (_deref(objects, r) for r in related) if isinstance(f, dict)]
    names = sorted(str(f["/UF"]).removeprefix("u:") for f in files)
    assert names == sorted(attachment_names(read(proof.evidence, proof.seal)))
    assert sorted(f["/AFRelationship"] for f in files) == ["/Source", "/Supplement"]
    # The XMP says what the file is, and agrees with the document information.
    # XML: its text compared once its character references are resolved.
    xmp = html.unescape(_run("pdfinfo", "-meta", proof.pdf).stdout)
    assert re.search(r"pdfaid:part[>=\"]+3", xmp) and re.search(r"pdfaid:conformance[>=\"]+A", xmp)
    assert re.search(r"pdfuaid:part[>=\"]+1", xmp)
    # Each tool named in the document information is named alike in the XMP,
    # and neither names one the other does not (the signing leaves both as rendered).
    for info_key, xmp_key in (("Producer", "pdf:Producer"), ("Creator", "xmp:CreatorTool")):
        in_info = re.search(rf"^{info_key}:\s+(.+)$", info, re.MULTILINE)
        in_xmp = re.search(rf"<{xmp_key}>([^<]+)<", xmp)
        assert (in_info is None) == (in_xmp is None), (info_key, info, xmp)
        if in_info is not None and in_xmp is not None:
            assert in_info.group(1).strip() == in_xmp.group(1)
    assert re.search(r"^Creator:", info, re.MULTILINE)
    title = re.search(r"Title:\s+(.+)\n", info)
    assert title is not None and REFERENCE in title.group(1)
    assert title.group(1) in xmp


def _text(proof: Proof) -> str:
    return " ".join(_run("pdftotext", proof.pdf, "-").stdout.split())


def _qpdf_objects(path: Path) -> dict[str, object]:
    """Every object of the file as qpdf reads it (JSON v2: "obj:12 0 R" and "trailer")."""
    result = _run("qpdf", "--json=2", "--json-key=qpdf", path)
    assert result.returncode == 0, result.stderr
    objects: dict[str, object] = json.loads(result.stdout)["qpdf"][1]
    return objects


def _deref(objects: dict[str, object], value: object) -> object:
    """A qpdf JSON value, through its reference ("12 0 R") if it is one."""
    if isinstance(value, str) and value.endswith(" R"):
        value = objects[f"obj:{value}"]
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    if isinstance(value, dict) and "stream" in value:
        return value["stream"]["dict"]
    return value


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


@pytest.mark.parametrize("doctor", [with_overlay, with_title], ids=["overlay", "title"])
def test_a_doctored_proof_is_reported_changed_by_pdfsig_pyhanko_and_lre_verify(
    proofs: dict[EvidenceEvent, Proof],
    tmp_path: Path,
    signer_process: SignerProcess,
    nss_db: str,
    doctor: Callable[[bytes], bytes],
) -> None:
    genuine = proofs[EvidenceEvent.CONSIGNMENT_ACCEPTANCE].pdf.read_bytes()
    doctored = tmp_path / "doctored.pdf"
    doctored.write_bytes(doctor(genuine))
    if doctor is with_overlay:
        assert OVERLAY_TEXT in _run("pdftotext", doctored, "-").stdout
    else:
        assert "Proof of refusal" in _run("pdfinfo", doctored).stdout

    # pdfsig: the signature is still valid over what it signed, and says the
    # document is not all signed; that line is the one the proof names.
    result = _run("pdfsig", "-nssdir", nss_db, doctored)
    assert "Signature is Valid." in result.stdout
    assert "  - Not total document signed" in result.stdout, result.stdout
    assert "Total document signed" not in result.stdout.replace("Not total document signed", "")

    with doctored.open("rb") as stream:
        reader = PdfFileReader(stream)
        (signature,) = reader.embedded_signatures
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(
            {"trust_roots": [_root(signer_process)], "allow_fetching": False}
        )
        status = validate_pdf_signature(signature, context)
        assert status.coverage != SignatureCoverageLevel.ENTIRE_FILE

    with pytest.raises(SealProblem, match="changed after it was signed"):
        verify_pdf.check_signature(doctored.read_bytes(), [_root(signer_process)], [])
    genuine_signature = verify_pdf.check_signature(genuine, [_root(signer_process)], [])
    assert genuine_signature.anchored


def test_a_proof_stored_before_one_pass_signing_still_verifies_but_not_once_doctored(
    client: SignerClient, signer_process: SignerProcess
) -> None:
    """Proofs made by SignPdf have their DSS in a revision after the signature."""
    evidence = _evidence(EvidenceEvent.SUBMISSION_ACCEPTANCE, _seal_certificate(client))
    rendered = render_proof(evidence, client.seal(evidence))
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        legacy = stub.SignPdf(signing_pb2.SignPdfRequest(pdf=rendered), timeout=30).signed_pdf
    roots = [_root(signer_process)]
    assert verify_pdf.check_signature(legacy, roots, []).anchored
    for doctor in (with_title, with_overlay, with_xmp_title):
        with pytest.raises(SealProblem, match="changed after it was signed"):
            verify_pdf.check_signature(doctor(legacy), roots, [])


def test_sign_pdf_digest_refuses_a_digest_of_another_length_or_stale_validation_data(
    client: SignerClient, signer_process: SignerProcess
) -> None:
    current = client.pdf_validation_data()
    assert len(current.certificates) >= 3 and current.crls and len(current.id) == 32
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        for digest, data_id, code in (
            (bytes(20), current.id, grpc.StatusCode.INVALID_ARGUMENT),
            (bytes(32), b"", grpc.StatusCode.INVALID_ARGUMENT),
            (bytes(32), b"\x01\x02\x03", grpc.StatusCode.INVALID_ARGUMENT),
            (bytes(32), bytes(32), grpc.StatusCode.FAILED_PRECONDITION),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                stub.SignPdfDigest(
                    signing_pb2.SignPdfDigestRequest(
                        document_digest=digest, validation_data_id=data_id
                    ),
                    timeout=30,
                )
            assert raised.value.code() == code, raised.value.details()


def test_a_proof_signer_fetches_the_validation_data_again_when_the_signer_changed_it(
    client: SignerClient, tmp_path: Path, verifiers: None
) -> None:
    """Validation data fetched before a CRL was renewed: the signer refuses it
    once, the proof signer fetches the new one and the proof carries it."""

    class Renewed:
        def __init__(self) -> None:
            self.fetched = 0

        def pdf_validation_data(self) -> PdfValidationData:
            self.fetched += 1
            data = client.pdf_validation_data()
            # The first answer names data the signer no longer has.
            return data if self.fetched > 1 else dataclasses.replace(data, id=bytes(32))

        def sign_pdf_digest(self, document_digest: bytes, validation_data_id: bytes) -> bytes:
            return client.sign_pdf_digest(document_digest, validation_data_id)

    renewed = Renewed()
    evidence = _evidence(EvidenceEvent.SUBMISSION_ACCEPTANCE, _seal_certificate(client))
    rendered = render_proof(evidence, client.seal(evidence))
    pdf = tmp_path / "proof.pdf"
    pdf.write_bytes(ProofSigner(renewed).sign(rendered, "LRE seal"))
    assert renewed.fetched == 2
    assert "Total document signed" in _run("pdfsig", pdf).stdout

    # Data the signer never agrees with: after a few tries, the signer is
    # unavailable for now (the outbox tries again later), never an error.
    class Disagreeing(Renewed):
        def pdf_validation_data(self) -> PdfValidationData:
            self.fetched += 1
            return dataclasses.replace(client.pdf_validation_data(), id=bytes(32))

    disagreeing = Disagreeing()
    with pytest.raises(DependencyUnavailable, match="validation data"):
        ProofSigner(disagreeing).sign(rendered, "LRE seal")
    assert disagreeing.fetched == 3


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
        # What the page says of the timestamp comes from the seal: rendered, not signed.
        pdf.write_bytes(render_proof(evidence, seal))
    finally:
        signer.close()
    text = " ".join(_run("pdftotext", pdf, "-").stdout.split())
    assert "Horodatage électronique qualifié" in text
    assert "Qualified electronic timestamp" in text
    assert "non qualifié" not in text


@pytest.mark.parametrize(
    "name",
    [
        '<img src="http://127.0.0.1:9/x.png"> <b>Dupont</b> & <i>Fils</i>',
        # Typst's own syntax: the data is a string literal in Typst source,
        # so these would end it and run as code if anything were unescaped.
        '")) #panic("injected") #(" *gras* _it_ $x^2$ <l> @ref',
        'Dupont \\" #panic("x") \\u{41} ] [ } { // /* Zoë «Fils» \\',
    ],
)
def test_markup_in_a_name_is_printed_as_text(
    client: SignerClient, tmp_path: Path, verifiers: None, name: str
) -> None:
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
    assert name in text


def test_proofs_rendered_one_after_another_each_print_their_own_evidence(
    client: SignerClient, tmp_path: Path, verifiers: None
) -> None:
    # Typst reuses what it laid out for the proof before: nothing of one
    # letter may show on another's proof.
    certificate = _seal_certificate(client)
    names = [f"Expéditeur n°{i} {uuid.uuid4().hex[:8]}" for i in range(4)]
    evidences = []
    for name in names:
        evidence = json.loads(_evidence(EvidenceEvent.CONSIGNMENT_ACCEPTANCE, certificate))
        evidence["sender"]["name"] = name
        evidences.append(json.dumps(evidence, separators=(",", ":"), ensure_ascii=False).encode())
    rendered = []
    for i, evidence in enumerate([*evidences, evidences[0]]):
        pdf = tmp_path / f"proof-{i}.pdf"
        pdf.write_bytes(render_proof(evidence, client.seal(evidence)))
        rendered.append(" ".join(_run("pdftotext", pdf, "-").stdout.split()))
    for i, text in enumerate(rendered):
        own = i % len(names)
        assert names[own] in text
        assert json.loads(evidences[own])["evidenceId"] in text
        assert not any(name in text for j, name in enumerate(names) if j != own)


def test_characters_the_fonts_cannot_draw_are_printed_by_code_point_the_evidence_exact(
    client: SignerClient, nss_db: str, tmp_path: Path
) -> None:
    """A name in Chinese, a rare symbol in a file name: PDF/A wants a glyph
    for every character, so the page prints those by code point and says so;
    the attached evidence keeps them, and the proof is signed as any other."""
    evidence = json.loads(_evidence(EvidenceEvent.CONSIGNMENT_REJECTION, _seal_certificate(client)))
    evidence["recipient"]["name"] = "李小龙 (Lee)"
    evidence["contentDigests"][0]["filename"] = "契約 𝄞.pdf"
    document = json.dumps(evidence, separators=(",", ":"), ensure_ascii=False).encode()
    pdf = tmp_path / "proof.pdf"
    pdf.write_bytes(proof_pdf(document, client.seal(document), client))
    text = " ".join(_run("pdftotext", pdf, "-").stdout.split())
    assert "[U+674E][U+5C0F][U+9F99] (Lee)" in text
    assert "[U+5951][U+7D04] [U+1D11E].pdf" in text
    assert "given by their Unicode code point" in text
    assert "李" not in text
    assert re.search(r"Pages:\s+1\n", _run("pdfinfo", pdf).stdout)
    signed = _run("pdfsig", "-nssdir", nss_db, pdf).stdout
    assert "Signature is Valid." in signed and "  - Total document signed" in signed
    assert _run("pdfdetach", "-saveall", "-o", tmp_path, pdf).returncode == 0
    assert (tmp_path / f"evidence-{evidence['evidenceId']}.json").read_bytes() == document


def test_a_proof_without_such_characters_says_nothing_of_code_points(
    proofs: dict[EvidenceEvent, Proof],
) -> None:
    text = " ".join(
        _run("pdftotext", proofs[EvidenceEvent.CONSIGNMENT_REJECTION].pdf, "-").stdout.split()
    )
    assert "code point" not in text and "[U+" not in text


def test_every_character_a_proof_prints_as_it_is_is_drawn_in_each_face_it_uses(
    tmp_path: Path,
) -> None:
    """Each code point ``printable`` keeps, of all of Unicode: Typst must find a
    glyph for it under PDF/A in the regular, bold and monospaced text of a
    proof (mono falling back to DejaVu Sans, as the templates say), or a
    proof fails (a byte order mark in a name did)."""
    kept = [
        chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and printable(chr(c)) == chr(c)
    ]
    # Combining marks after a letter, as they come in decomposed names.
    characters = "".join("a" + c if unicodedata.category(c).startswith("M") else c for c in kept)
    assert len(kept) > 5000 and {"é", "ж", "ש", "ẞ"} <= set(characters)
    assert printable("A\ufeffB\ue000\x1c\U0001d11e") == "A[U+FEFF]B[U+E000][U+001C][U+1D11E]"
    assert printable("motif :\t\r\nsuite\rfin") == "motif : \nsuite\nfin"
    literal = json.dumps(characters).replace("\\", "\\\\").replace('"', '\\"')
    source = (
        '#set document(title: "glyphs")\n#set text(lang: "fr", font: "DejaVu Sans")\n'
        f'#let s = json(bytes("{literal}"))\n'
        '#s\n\n#text(weight: "bold", s)\n\n#text(font: ("DejaVu Sans Mono", "DejaVu Sans"), s)\n'
    )
    compiler = typst.Compiler(root=tmp_path, font_paths=[FONTS], ignore_system_fonts=True)
    pdf = compiler.compile(input=source.encode(), pdf_standards=PDF_STANDARDS)
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF-")
