"""Archive timestamps over real seals and PDF proofs from the signer process:
CAdES B-LTA seals (archive-time-stamp-v3) and PAdES B-LTA proofs (document
timestamps), checked by openssl (the seal, each token over its imprint) and
pyHanko's validator (the document timestamps), then by ``lre-verify`` as a
process, today and, under libfaketime, after the signer's TSA certificate
has expired: the evidence renewed by an archive timestamp from a longer-lived
TSA still proves its time, the one left at B-LT is reported as such."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from lre.runtime import archival
from lre.runtime import bundle_layout as layout
from lre.runtime.longterm import Compromise, load_compromises
from lre.server.adapters.signer import SignerClient
from lre.server.proofs import archive
from lre.verify import verify_bundle
from lre.verify.provider import Provider, load_certificates
from tests.support.bundles import build_test_bundle, members_of, rezip
from tests.support.openssl_tsa import OpensslTsa
from tests.support.pki import openssl
from tests.support.processes import BIN
from tests.support.signer import SignerProcess

# The development TSA certificate lives 825 days; the archive TSA 3000.
AFTER_EXPIRY = "+900d"


@dataclass(frozen=True)
class Setup:
    client: SignerClient
    own: archive.SignerTimeStamper
    external: archive.TimeStamper
    data: archive.ValidationData
    roots: list[Path]
    provider: Path
    folder: Path


def _der(pem_file: Path) -> bytes:
    return x509.load_pem_x509_certificate(pem_file.read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def setup(
    signer_process: SignerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("archive")
    tsa = OpensslTsa(folder / "tsa", tsa_days=3000)
    client = SignerClient(signer_process.grpc_address, timeout_s=30)
    validation = client.pdf_validation_data()
    data = archive.ValidationData(
        (*validation.certificates, _der(tsa.root / "tsa.pem"), _der(tsa.root_ca)),
        (*validation.crls, x509.load_pem_x509_crl(tsa.crl.read_bytes()).public_bytes(Encoding.DER)),
        (_der(signer_process.root_ca), _der(tsa.root_ca)),
    )
    provider = folder / "provider.pem"
    provider.write_bytes(
        b"".join(
            x509.load_der_x509_certificate(c).public_bytes(Encoding.PEM)
            for c in (
                *client.certificate_chain("seal")[:1],
                *client.certificate_chain("timestamping")[:1],
            )
        )
        + (tsa.root / "tsa.pem").read_bytes()
    )
    with tsa.serving() as url:
        yield Setup(
            client,
            archive.SignerTimeStamper(client.timestamp),
            archive.http_stamper(url, 30),
            data,
            [signer_process.root_ca, tsa.root_ca],
            provider,
            folder,
        )
    client.close()


def _lre_verify(
    bundle: Path, setup: Setup, *extra: str, faketime: str | None = None
) -> tuple[int, dict[str, dict[str, object]]]:
    command = [str(BIN / "lre-verify"), str(bundle), "--json", "--provider", str(setup.provider)]
    for root in setup.roots:
        command += ["--trust", str(root)]
    if faketime:
        command = ["faketime", "-f", faketime, *command]
    result = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in report["checks"]}


def _archived_twice(setup: Setup, seal: bytes, pdf: bytes) -> tuple[bytes, bytes]:
    """Renewed once by the signer's own TSA, then by the longer-lived external one."""
    for stamper in (setup.own, setup.external):
        seal = archive.archive_seal(seal, stamper, setup.data)
        pdf = archive.archive_pdf(pdf, stamper, setup.data)
    return seal, pdf


@pytest.fixture(scope="module")
def bundles(setup: Setup) -> dict[str, Path]:
    made = {}
    for name, extend in (("b-lt", None), ("b-lta", lambda s, p: _archived_twice(setup, s, p))):
        path = setup.folder / f"{name}.zip"
        path.write_bytes(build_test_bundle(setup.client, archive=extend))
        made[name] = path
    return made


def _member(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as z:
        return z.read(name)


def test_archived_seal_keeps_its_signature_and_each_token_is_over_its_imprint(
    setup: Setup, bundles: dict[str, Path], tmp_path: Path
) -> None:
    seal = _member(bundles["b-lta"], layout.EVIDENCE_ARCHIVE_SEAL)
    original = _member(bundles["b-lta"], layout.EVIDENCE_SEAL)
    assert archival.same_signature(original, seal)
    (tmp_path / "a.p7m").write_bytes(seal)
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", tmp_path / "a.p7m",
        "-CAfile", setup.roots[0], "-crl_check", "-out", tmp_path / "doc.json",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert (tmp_path / "doc.json").read_bytes() == _member(bundles["b-lta"], layout.EVIDENCE)
    stamps = archival.stamps(seal)
    assert len(stamps) == 2
    assert stamps[0].time.replace(microsecond=0) <= stamps[1].time  # OpenSSL: whole seconds
    info = cms.ContentInfo.load(seal)
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    for n, (stamp, root) in enumerate(zip(stamps, setup.roots, strict=True)):
        token = tmp_path / f"ats{n}.der"
        token.write_bytes(stamp.token.dump())
        index = archival.index_of(stamp.token)
        # The imprint as EN 319 122-1 computes it, from what the seal held then.
        digest = archival.imprint(signed_data, signer_info, index).hex()
        checked = openssl(
            "ts", "-verify", "-digest", digest, "-in", token, "-token_in", "-CAfile", root,
            "-untrusted", setup.folder / "tsa" / "tsa.pem" if n else setup.roots[0],
        )  # fmt: skip
        assert "Verification: OK" in checked.stdout, checked.stdout + checked.stderr


def test_a_changed_archive_chain_is_named(bundles: dict[str, Path]) -> None:
    seal = _member(bundles["b-lta"], layout.EVIDENCE_ARCHIVE_SEAL)
    info = cms.ContentInfo.load(seal)
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    attrs = list(signer_info["unsigned_attrs"])
    # The first archive timestamp taken out: the second no longer covers what is there.
    signer_info["unsigned_attrs"] = cms.CMSAttributes([attrs[0], attrs[2]])
    signed_data["signer_infos"] = cms.SignerInfos([signer_info])
    doctored = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    with pytest.raises(archival.ArchiveProblem, match="changed or removed"):
        archival.stamps(doctored)


def test_an_archived_seal_with_another_signature_timestamp_is_not_the_seal_extended(
    setup: Setup, bundles: dict[str, Path]
) -> None:
    """The archive seal's signature timestamp must be the seal's own: another
    one, even valid, over the same signature and by the provider's TSA,
    would date the signature otherwise than the seal the log names."""
    original = _member(bundles["b-lta"], layout.EVIDENCE_SEAL)
    info = cms.ContentInfo.load(original)
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    digest = hashlib.sha256(signer_info["signature"].native).digest()
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": digest,
            },
            "cert_req": True,
        }
    )
    token = tsp.TimeStampResp.load(setup.client.timestamp(request.dump()))["time_stamp_token"]
    signer_info["unsigned_attrs"] = cms.CMSAttributes(
        [{"type": "signature_time_stamp_token", "values": [token]}]
    )
    signed_data["signer_infos"] = cms.SignerInfos([signer_info])
    swapped = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    assert not archival.same_signature(original, swapped)
    members = members_of(bundles["b-lta"].read_bytes())
    members[layout.EVIDENCE_ARCHIVE_SEAL] = swapped
    path = setup.folder / "swapped.zip"
    path.write_bytes(rezip(members))
    report = _in_process(path, setup, {})
    detail = report["evidence seal: archive timestamps"]
    assert "not the evidence's seal extended" in detail, detail


def test_pyhanko_validates_the_signature_and_each_document_timestamp(
    setup: Setup, bundles: dict[str, Path]
) -> None:
    pdf = _member(bundles["b-lta"], layout.PROOF_PDF)
    reader = PdfFileReader(io.BytesIO(pdf))
    anchors = [asn1_x509.Certificate.load(_der(r)) for r in setup.roots]
    context = ValidationContext(trust_roots=anchors, allow_fetching=False)
    (signature,) = reader.embedded_regular_signatures
    status = validate_pdf_signature(signature, context)
    assert status.intact and status.valid, status.pretty_print_details()
    timestamps = reader.embedded_timestamp_signatures
    assert [t.field_name for t in timestamps] == ["ArchiveTimestamp1", "ArchiveTimestamp2"]
    for stamp in timestamps:
        result = validate_pdf_timestamp(stamp, validation_context=context)
        assert result.intact and result.valid and result.trusted, result
    # After the last one, only the DSS update with its own validation data.
    assert result.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    assert result.modification_level == ModificationLevel.LTA_UPDATES


def test_lre_verify_names_the_instant_each_is_proven_to_exist(
    setup: Setup, bundles: dict[str, Path]
) -> None:
    for name in ("b-lt", "b-lta"):
        code, checks = _lre_verify(bundles[name], setup)
        assert code == 0, checks
        for check in ("evidence seal: archive timestamps", "proof PDF: document timestamps"):
            assert checks[check]["outcome"] == "pass", checks[check]
            assert "proven to exist at" in str(checks[check]["detail"])
    assert "B-LTA: 2 archive timestamp(s)" in str(
        checks["evidence seal: archive timestamps"]["detail"]
    )


def test_after_the_tsa_certificate_expired_only_archived_evidence_still_proves_its_time(
    setup: Setup, bundles: dict[str, Path]
) -> None:
    code, checks = _lre_verify(bundles["b-lta"], setup, faketime=AFTER_EXPIRY)
    for check in ("evidence seal: archive timestamps", "proof PDF: document timestamps"):
        assert checks[check]["outcome"] == "pass", checks[check]
        assert "proven to exist at" in str(checks[check]["detail"])
    code, checks = _lre_verify(bundles["b-lt"], setup, faketime=AFTER_EXPIRY)
    assert code == 1
    for check in ("evidence seal: archive timestamps", "proof PDF: document timestamps"):
        detail = str(checks[check]["detail"])
        assert checks[check]["outcome"] == "fail", checks[check]
        assert "expired on" in detail and "the evidence is B-LT" in detail, detail


def _compromised(setup: Setup, tmp_path: Path, purpose: str, since: dt.datetime) -> Path:
    certificate = setup.client.certificate_chain(purpose)[0]  # type: ignore[arg-type]
    path = tmp_path / "compromised.json"
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "certificateSha256": hashlib.sha256(certificate).hexdigest(),
                        "compromisedAt": since.isoformat(),
                        "reason": "test",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    return path


def test_a_compromised_key_refuses_what_it_signed_after_and_keeps_what_another_key_covers(
    setup: Setup, bundles: dict[str, Path], tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    check = "evidence seal: archive timestamps"
    # The seal key compromised before these seals were made: all refused
    # (the process once, the same function in process for the other bundle).
    keys = _compromised(setup, tmp_path, "seal", now - dt.timedelta(days=1))
    code, checks = _lre_verify(bundles["b-lta"], setup, "--compromised", str(keys))
    assert code == 1
    assert "after the seal key was declared compromised" in str(checks[check]["detail"])
    report = _in_process(bundles["b-lt"], setup, load_compromises(keys))
    assert "after the seal key was declared compromised" in report[check]
    # The tree head, sealed by the same key after, proves nothing either.
    head = "tree head seal: keys"
    assert "after the seal key was declared compromised" in report[head], report[head]
    assert "after the seal key was declared compromised" in str(checks[head]["detail"])
    # The signer's TSA key compromised from now: the archive timestamp by the
    # external TSA, made before, keeps the archived evidence; the other is refused.
    keys = _compromised(setup, tmp_path, "timestamping", now)
    code, checks = _lre_verify(bundles["b-lt"], setup, "--compromised", str(keys))
    assert code == 1
    assert "no archive timestamp by another key" in str(checks[check]["detail"])
    report = _in_process(bundles["b-lta"], setup, load_compromises(keys))
    assert report[check].startswith("proven to exist at"), report[check]
    # The tree head's own timestamp by that key has no archive timestamp: a
    # bundle fetched after the provider seals a new head carries a good one.
    assert "declared compromised since" in report["tree head seal: keys"]


def test_an_archive_timestamp_by_a_tsa_the_provider_did_not_declare_is_named(
    setup: Setup, bundles: dict[str, Path], tmp_path: Path
) -> None:
    declared = tmp_path / "provider.pem"
    own = (
        setup.client.certificate_chain("seal")[0],
        setup.client.certificate_chain("timestamping")[0],
    )
    declared.write_bytes(
        b"".join(x509.load_der_x509_certificate(c).public_bytes(Encoding.PEM) for c in own)
    )
    report = _in_process(bundles["b-lta"], setup, {}, declared)
    detail = report["evidence seal: archive timestamps"]
    assert (
        "archive timestamp 2 is by OpenSSL Test TSA, which is not a timestamp authority" in detail
    )


def _in_process(
    bundle: Path, setup: Setup, compromised: dict[str, Compromise], declared: Path | None = None
) -> dict[str, str]:
    provider = Provider.of(load_certificates((declared or setup.provider).read_bytes()))
    anchors = [_der(r) for r in setup.roots]
    report = verify_bundle(bundle.read_bytes(), anchors, provider, compromised)
    return {c.name: c.detail for c in report.checks}
