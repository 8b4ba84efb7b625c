"""The offline evidence bundle and ``lre-verify``, over real seals and a real
PDF proof from the signer process.

The log part is a small RFC 9162 tree built with the domain's own functions
(the evidence's leaf among others), its head sealed by the real signer as
``EventLog.seal_head`` has it sealed: the bundle gets a real inclusion proof
and a real sealed head without a database. Each test then changes one part
of the good bundle and expects the check for that part to fail; the manifest
is recomputed so that it is the part's own check that must catch it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lre.runtime import bundle_layout as layout
from lre.server.adapters.signer import SignerClient
from lre.server.proofs.bundle import zip_members
from lre.signer import pki
from lre.verify import verify_bundle
from lre.verify.chains import anchor
from lre.verify.cms import SealProblem
from lre.verify.provider import Provider, load_certificates
from lre.verify.report import Report
from tests.support import doctored
from tests.support.bundles import build_test_bundle, rezip
from tests.support.processes import BIN
from tests.support.signer import SignerProcess

LEAF_INDEX = 2
TREE_SIZE = 5


@dataclass(frozen=True)
class Good:
    bundle: bytes
    members: dict[str, bytes]
    root_der: bytes
    root_pem: Path
    ca: pki.LocalCA
    # The provider's declared certificates (its seal's and its TSA's).
    provider_pem: Path
    provider: Provider


@pytest.fixture(scope="module")
def client(signer_process: SignerProcess) -> Iterator[SignerClient]:
    client = SignerClient(signer_process.grpc_address, timeout_s=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def good(
    client: SignerClient, signer_process: SignerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Good:
    bundle = build_test_bundle(client)
    with zipfile.ZipFile(BytesIO(bundle)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    root = x509.load_pem_x509_certificate(signer_process.root_ca.read_bytes())
    pki_dir = signer_process.paths.pki
    provider_pem = tmp_path_factory.mktemp("provider") / "provider-certificates.pem"
    provider_pem.write_bytes(
        (pki_dir / "seal.pem").read_bytes() + (pki_dir / "timestamping.pem").read_bytes()
    )
    return Good(
        bundle,
        members,
        root.public_bytes(serialization.Encoding.DER),
        signer_process.root_ca,
        pki.LocalCA.load(pki_dir / "root-ca.key", pki_dir / "root-ca.pem"),
        provider_pem,
        Provider.of(load_certificates(provider_pem.read_bytes())),
    )


def _flip(data: bytes, needle: bytes, offset: int = 0) -> bytes:
    at = data.index(needle) + offset
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _signature_of(seal: bytes) -> bytes:
    signature: bytes = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]["signature"].native
    return signature


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lre-verify"), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def _verify(good: Good, bundle: bytes) -> Report:
    return verify_bundle(bundle, [good.root_der], good.provider)


# -- the good bundle -------------------------------------------------------------


def test_the_good_bundle_is_valid_from_the_command_line(good: Good, tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(good.bundle)
    result = _cli(path, "--trust", good.root_pem, "--provider", good.provider_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "VALID"
    assert all(line.startswith("ok  ") for line in lines[:-1]), result.stdout
    for name in (
        "bundle", "manifest", "evidence", "evidence seal: covers the document",
        "evidence seal: signature", "evidence seal: signature timestamp",
        "evidence seal: validation data (B-LT)", "evidence seal: certificate chains",
        "evidence seal: revocation", "tree head seal: signature", "tree head seal: revocation",
        "proof PDF: PAdES signature", "proof PDF: attachments", "log leaf", "inclusion proof",
        "evidence seal: the provider's seal", "evidence seal: the provider's TSA",
        "tree head seal: the provider's seal", "tree head seal: the provider's TSA",
        "evidence issuer", "proof PDF: the provider's seal", "readme", "provider claimed",
    ):  # fmt: skip
        assert f"  {name}: " in result.stdout, name
    # Whom the bundle claims to be from comes right after its own checks.
    assert lines[2].startswith("ok    provider claimed: claims to be from "), lines[:3]

    as_json = _cli(path, "--trust", good.root_pem, "--provider", good.provider_pem, "--json")
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["verdict"] == "VALID" and report["anchored"] and report["failed"] == []
    assert len(report["checks"]) == len(lines) - 1


def test_the_same_members_make_the_same_bytes(good: Good) -> None:
    assert zip_members(dict(good.members)) == good.bundle


def test_without_trust_nothing_fails_but_it_is_not_anchored(good: Good, tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(good.bundle)
    result = _cli(path)
    assert result.returncode == 1
    assert "FAIL" not in result.stdout
    assert "not anchored" in result.stdout.splitlines()[-1]
    assert "give --trust" in result.stdout
    report = json.loads(_cli(path, "--json").stdout)
    assert report["verdict"] == "INVALID" and not report["anchored"] and report["failed"] == []


def test_without_trust_a_chain_that_stops_below_its_root_is_anchored_nowhere(good: Good) -> None:
    """Only a certificate that signs itself is a root: a leaf is never its
    own anchor (asn1crypto's ``self_signed`` is "no" or "maybe", both truthy)."""
    chain = [
        asn1_x509.Certificate.load(der)
        for _, _, der in pem.unarmor(good.members[layout.SEAL_CHAIN], multiple=True)
    ]
    leaf, *cas = chain
    below_root = [c for c in cas if c.subject != c.issuer]
    at = dt.datetime.now(dt.UTC)
    with pytest.raises(SealProblem, match="no path"):
        anchor(leaf, [leaf, *below_root], [], at, "seal")
    assert anchor(leaf, chain, [], at, "seal").anchored is False


def test_another_ca_as_trust_anchor_anchors_nothing(good: Good, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        pki.LocalCA.create("Another CA").certificate.public_bytes(serialization.Encoding.PEM)
    )
    path = tmp_path / "bundle.zip"
    path.write_bytes(good.bundle)
    result = _cli(path, "--trust", other, "--provider", good.provider_pem)
    assert result.returncode == 1 and result.stdout.splitlines()[-1] == "INVALID"
    assert "FAIL  evidence seal: certificate chains: no path" in result.stdout
    assert "FAIL  proof PDF: PAdES signature" in result.stdout


def test_a_leaf_certificate_as_trust_anchor_is_refused_not_left_unrevoked(
    good: Good, tmp_path: Path
) -> None:
    """The provider's seal and TSA certificates given as --trust (trusted
    lists publish such service certificates): anchored there, no issuer CRL
    would ever be asked, and a revoked seal would pass."""
    members = dict(good.members)
    members[layout.CRLS] = _revoking_crl(good)
    path = tmp_path / "revoked.zip"
    path.write_bytes(rezip(members))
    for trust in ((good.provider_pem,), (good.root_pem, good.provider_pem)):
        args = [a for t in trust for a in ("--trust", t)]
        result = _cli(path, *args, "--provider", good.provider_pem)
        assert result.returncode == 1 and result.stdout.splitlines()[-1] == "INVALID"
        assert "FAIL  trust anchors: not a CA certificate" in result.stdout, result.stdout
    report = verify_bundle(good.bundle, [good.root_der], good.provider)
    assert report.valid and "trust anchors" not in report.failed


# -- one part changed at a time ----------------------------------------------------


def _other_ca_chain(good: Good) -> bytes:
    """A certificate for the seal's own key and name, from another CA, and that CA."""
    other = pki.LocalCA.create("LRE Development Root CA")  # even the same name
    seal = x509.load_pem_x509_certificate(good.members[layout.SEAL_CHAIN])
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(seal.subject)
        .issuer_name(other.certificate.subject)
        .public_key(seal.public_key())  # type: ignore[arg-type]
        .serial_number(seal.serial_number)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(other.key, hashes.SHA256())
    )
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (forged, other.certificate))


def _revoking_crl(good: Good) -> bytes:
    seal = x509.load_pem_x509_certificate(good.members[layout.SEAL_CHAIN])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(good.ca.certificate.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(seal.serial_number)
            .revocation_date(now - dt.timedelta(hours=1))
            .build()
        )
        .sign(good.ca.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


Change = Callable[[Good, dict[str, bytes]], None]


def _set(name: str, value: Callable[[Good, bytes], bytes]) -> Change:
    def change(good: Good, members: dict[str, bytes]) -> None:
        members[name] = value(good, members[name])

    return change


def _altered_path(_: Good, data: bytes) -> bytes:
    proof = json.loads(data)
    first = proof["auditPath"][0]
    proof["auditPath"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    return json.dumps(proof).encode()


def _altered_root(_: Good, data: bytes) -> bytes:
    head = json.loads(data)
    root = head["rootHash"]
    head["rootHash"] = ("0" if root[0] != "0" else "1") + root[1:]
    return json.dumps(head, sort_keys=True, separators=(",", ":")).encode()


def _b_t_only(_: Good, seal: bytes) -> bytes:
    """The same seal without its CRLs: still a valid CAdES B-T signature."""
    info = cms.ContentInfo.load(seal)
    info["content"]["crls"] = None
    stripped: bytes = info.dump()
    return stripped


def _drop(members: dict[str, bytes], name: str) -> None:
    del members[name]


CHANGES: dict[str, tuple[Change, str]] = {
    "evidence byte": (
        _set(layout.EVIDENCE, lambda g, d: _flip(d, b"Dupont")),
        "evidence seal: covers the document",
    ),
    "evidence seal byte": (
        _set(layout.EVIDENCE_SEAL, lambda g, d: _flip(d, _signature_of(d), 20)),
        "evidence seal: signature",
    ),
    "PDF byte": (
        _set(layout.PROOF_PDF, lambda g, d: _flip(d, b"%", 11)),
        "proof PDF: PAdES signature",
    ),
    # Appended as a forger would: the signed bytes stay as they were.
    "PDF overlay appended": (
        _set(layout.PROOF_PDF, lambda g, d: doctored.with_overlay(d)),
        "proof PDF: PAdES signature",
    ),
    "PDF title changed": (
        _set(layout.PROOF_PDF, lambda g, d: doctored.with_title(d)),
        "proof PDF: PAdES signature",
    ),
    "PDF with a file attached after": (
        _set(layout.PROOF_PDF, lambda g, d: doctored.with_attachment(d)),
        "proof PDF: attachments",
    ),
    "PDF XMP title changed": (
        _set(layout.PROOF_PDF, lambda g, d: doctored.with_xmp_title(d)),
        "proof PDF: PAdES signature",
    ),
    "chain of another CA": (
        _set(layout.SEAL_CHAIN, lambda g, d: _other_ca_chain(g)),
        "evidence seal: certificate chains",
    ),
    "evidence seal without CRLs (B-T)": (
        _set(layout.EVIDENCE_SEAL, _b_t_only),
        "evidence seal: validation data (B-LT)",
    ),
    "CRL removed": (_set(layout.CRLS, lambda g, d: b""), "evidence seal: revocation"),
    "CRL revoking": (_set(layout.CRLS, lambda g, d: _revoking_crl(g)), "evidence seal: revocation"),
    "inclusion proof altered": (_set(layout.INCLUSION_PROOF, _altered_path), "inclusion proof"),
    "head root altered": (
        _set(layout.TREE_HEAD, _altered_root),
        "tree head seal: covers the document",
    ),
    "head seal altered": (
        _set(layout.TREE_HEAD_SEAL, lambda g, d: _flip(d, _signature_of(d), 20)),
        "tree head seal: signature",
    ),
    "PDF missing": (lambda g, m: _drop(m, layout.PROOF_PDF), "bundle"),
    "leaf of another evidence": (
        _set(layout.LOG_LEAF, lambda g, d: d.replace(b'"evidence":"', b'"evidence":"0')),
        "log leaf",
    ),
    "proof not JSON": (_set(layout.INCLUSION_PROOF, lambda g, d: b"{"), "inclusion proof"),
    "seal not CMS": (
        _set(layout.EVIDENCE_SEAL, lambda g, d: b"\x30\x03\x02\x01"),
        "evidence seal: covers the document",
    ),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_changed_part_is_named(good: Good, what: str) -> None:
    change, expected = CHANGES[what]
    members = dict(good.members)
    change(good, members)
    report = _verify(good, rezip(members))
    assert not report.valid and report.verdict == "INVALID"
    assert expected in report.failed, report.as_text()
    assert "manifest" not in report.failed, report.as_text()


def test_the_head_root_changed_also_breaks_the_inclusion_proof(good: Good) -> None:
    members = dict(good.members)
    members[layout.TREE_HEAD] = _altered_root(good, members[layout.TREE_HEAD])
    assert "inclusion proof" in _verify(good, rezip(members)).failed


def _appended(bundle: bytes, info: zipfile.ZipInfo | None, data: bytes, comment: bytes) -> bytes:
    out = BytesIO(bundle)
    with zipfile.ZipFile(out, "a") as archive:
        if info is not None:
            archive.writestr(info, data)
        archive.comment = comment
    return out.getvalue()


ZIP_LAYERS: dict[str, Callable[[Good], bytes]] = {
    "bytes before": lambda g: b"JUNK" * 8 + g.bundle,
    "bytes after": lambda g: g.bundle + b"JUNK" * 8,
    "a comment": lambda g: _appended(g.bundle, None, b"", b"Refused on 1 January 2020"),
    "an empty directory entry": lambda g: _appended(
        g.bundle, zipfile.ZipInfo("payload/"), b"", b""
    ),
    "a directory entry with data": lambda g: _appended(
        g.bundle, zipfile.ZipInfo("notes.txt/"), b"refused" * 300, b""
    ),
    # A whole forged bundle before the genuine one: read from its end, the
    # file is the genuine bundle; read from its start (Java's ZipInputStream,
    # `jar x`), the forgery.
    "a forged bundle before it": lambda g: (
        rezip(
            {**g.members, layout.EVIDENCE: g.members[layout.EVIDENCE].replace(b"Dupont", b"Durant")}
        )
        + g.bundle
    ),
}


@pytest.mark.parametrize("what", list(ZIP_LAYERS))
def test_zip_bytes_no_seal_covers_are_refused(good: Good, what: str) -> None:
    report = _verify(good, ZIP_LAYERS[what](good))
    assert not report.valid and "bundle" in report.failed, report.as_text()
    assert _verify(good, good.bundle).valid


def _with_note(data: bytes) -> bytes:
    document = json.loads(data)
    document["note"] = "the recipient REFUSED"
    return json.dumps(document).encode()


def _member_note(data: bytes) -> bytes:
    manifest = json.loads(data)
    manifest["members"][layout.EVIDENCE]["note"] = "REFUSED"
    return json.dumps(manifest).encode()


def _claim_twice(data: bytes) -> bytes:
    """Another provider claimed first, the genuine claim last: a parser that
    keeps the first key reads Evil Corp, Python's the genuine one."""
    assert b'"provider":' in data
    forged = json.dumps({"name": "Evil Corp", "sealCertificates": ["00" * 32]})
    return data.replace(b'"provider":', f'"provider": {forged}, "provider":'.encode(), 1)


# Words no seal covers, in the members that carry no seal of their own.
UNSEALED_TEXT: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "a note in the inclusion proof": (layout.INCLUSION_PROOF, _with_note),
    "another hash named in the inclusion proof": (
        layout.INCLUSION_PROOF,
        lambda d: d.replace(b"SHA-256 (RFC 9162)", b"SHA-1"),
    ),
    "a note in a manifest entry": (layout.MANIFEST, _member_note),
    "a provider claimed twice in the manifest": (layout.MANIFEST, _claim_twice),
    "text before the seal chain": (layout.SEAL_CHAIN, lambda d: b"Refused on 1 January\n" + d),
    "text after the TSA chain": (layout.TSA_CHAIN, lambda d: d + b"Refused\n"),
    "another kind of PEM block": (
        layout.CRLS,
        lambda d: d + pem.armor("LRE NOTE", b"the recipient refused"),
    ),
}


@pytest.mark.parametrize("what", list(UNSEALED_TEXT))
def test_text_no_seal_covers_is_refused(good: Good, what: str) -> None:
    name, change = UNSEALED_TEXT[what]
    members = dict(good.members)
    members[name] = change(members[name])
    report = _verify(good, rezip(members, manifest=name != layout.MANIFEST))
    assert not report.valid, report.as_text()


def test_a_changed_manifest_or_a_member_behind_it_is_named(good: Good) -> None:
    manifest = json.loads(good.members[layout.MANIFEST])
    manifest["members"][layout.PROOF_PDF]["sha256"] = "00" * 32
    members = {**good.members, layout.MANIFEST: json.dumps(manifest).encode()}
    report = _verify(good, rezip(members, manifest=False))
    assert report.failed == ["manifest"], report.as_text()
    assert "proof.pdf does not match" in report.as_text()

    members = {**good.members, layout.README: b"changed"}
    report = _verify(good, rezip(members, manifest=False))
    assert report.failed == ["manifest", "readme"], report.as_text()
    # With the manifest recomputed: what README.txt says is covered by no seal.
    members = {**good.members, layout.README: b"Trust attacker-root.pem instead."}
    report = _verify(good, rezip(members))
    assert report.failed == ["readme"], report.as_text()


def test_the_claim_in_the_manifest_is_the_sealed_issuer_or_refused(good: Good) -> None:
    manifest = json.loads(good.members[layout.MANIFEST])
    claim = manifest["provider"]
    assert claim["name"] and len(claim["sealCertificates"]) == 1
    for changed, why in (
        ({**claim, "name": "Another Provider"}, "the claim is covered by no seal"),
        ({**claim, "sealCertificates": ["00" * 32]}, "another seal certificate"),
        (
            {**claim, "sealCertificates": [*claim["sealCertificates"], "11" * 32]},
            "signed nothing here",
        ),
        ({**manifest, "trust": "attacker-root.pem"}, "fields no seal covers: trust"),
    ):
        doctored = {**manifest, "provider": changed} if "trust" not in changed else changed
        members = {**good.members, layout.MANIFEST: json.dumps(doctored).encode()}
        report = _verify(good, rezip(members))
        assert report.failed == ["provider claimed"], report.as_text()
        assert why in report.as_text(), report.as_text()
    # A bundle made before manifests carried a claim: its sealed issuer.
    older = {k: v for k, v in manifest.items() if k != "provider"}
    members = {**good.members, layout.MANIFEST: json.dumps(older).encode()}
    report = _verify(good, rezip(members))
    assert report.valid, report.as_text()
    assert "no claim in the manifest (an older bundle)" in report.as_text()


@pytest.mark.parametrize(
    "data",
    [b"not a zip", b"", b"PK\x03\x04" + bytes(40)],
    ids=["text", "empty", "truncated-zip"],
)
def test_not_a_zip_is_a_named_finding_not_a_traceback(
    data: bytes, tmp_path: Path, good: Good
) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    result = _cli(path, "--trust", good.root_pem)
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.startswith("FAIL  bundle: not a ZIP archive"), result.stdout
    assert result.stdout.splitlines()[-1] == "INVALID"


def test_a_missing_file_or_a_bad_trust_file_is_said(tmp_path: Path, good: Good) -> None:
    result = _cli(tmp_path / "absent.zip", "--trust", good.root_pem)
    assert result.returncode == 1 and result.stderr == ""
    assert "FAIL  bundle: cannot read" in result.stdout
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a certificate")
    path = tmp_path / "bundle.zip"
    path.write_bytes(good.bundle)
    result = _cli(path, "--trust", bad)
    assert result.returncode == 1 and result.stderr == ""
    assert "FAIL  trust anchors" in result.stdout


# -- hostile bundles: findings, never a traceback or unbounded memory -----------------


def test_a_member_the_format_does_not_name_is_refused_even_when_listed(good: Good) -> None:
    members = {**good.members, "extra.txt": b"trust root: attacker-ca.pem"}
    report = _verify(good, rezip(members))  # the manifest lists it, with its SHA-256
    assert not report.valid and "manifest" in report.failed
    assert "extra.txt is not a member of" in report.as_text()


def test_json_nested_past_any_document_is_invalid_not_a_recursion_error(
    good: Good, tmp_path: Path
) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    for name in (layout.EVIDENCE, layout.MANIFEST, layout.INCLUSION_PROOF):
        members = {**good.members, name: deep}
        path = tmp_path / "deep.zip"
        path.write_bytes(rezip(members, manifest=name != layout.MANIFEST))
        result = _cli(path, "--trust", good.root_pem, "--provider", good.provider_pem)
        assert result.returncode == 1 and result.stderr == "", result.stderr[-500:]
        assert "nests deeper than" in result.stdout and "Traceback" not in result.stdout


def test_members_that_inflate_past_the_bound_are_refused_before_inflating(
    good: Good, tmp_path: Path
) -> None:
    members = {**good.members, layout.README: b"\0" * (40 << 20)}  # 40 MiB of zeros
    path = tmp_path / "bomb.zip"
    path.write_bytes(rezip(members))
    assert path.stat().st_size < 1 << 20
    result = _cli(path, "--trust", good.root_pem, "--provider", good.provider_pem)
    assert result.returncode == 1 and result.stderr == ""
    assert "FAIL  bundle: " in result.stdout and "larger than" in result.stdout


def test_without_the_provider_named_the_verdict_is_not_valid(good: Good, tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(good.bundle)
    result = _cli(path, "--trust", good.root_pem)
    assert result.returncode == 1 and "FAIL" not in result.stdout
    assert "give --trust with the provider's root CA and --provider" in result.stdout
