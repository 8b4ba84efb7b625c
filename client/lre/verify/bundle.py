"""``verify_bundle``: every check of an evidence bundle, each named, none fatal.

A check that cannot run because what it needs is missing or unreadable fails
with that reason; the others still run, so the report names every damaged
part and not only the first.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from lre.runtime import bundle_layout as layout
from lre.verify import chains, cms, merkle, pdf
from lre.verify.cms import SealProblem
from lre.verify.report import Report

# Far above a proof (~60 KB) and its chains; a bundle is read into memory.
MAX_MEMBER_BYTES = 32 << 20
MAX_MEMBERS = 64


class _Missing(Exception):
    pass


@dataclass
class _Bundle:
    members: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, name: str) -> bytes:
        if name not in self.members:
            raise _Missing(f"{name} is missing from the bundle")
        return self.members[name]


def verify_bundle(data: bytes, anchors: list[bytes] | None = None) -> Report:
    """The report on ``data`` (the bundle ZIP) under ``anchors`` (DER certificates
    the verifier trusts; none: every chain is reported not anchored)."""
    report = Report()
    trusted = [asn1_x509.Certificate.load(a) for a in anchors or []]
    for anchor in trusted:
        anchor.native  # noqa: B018 -- a --trust file that is no certificate fails here
    report.anchored = bool(trusted)
    bundle = _open(report, data)
    if bundle is None:
        return report
    _check_manifest(report, bundle)
    certs = _bundle_certificates(report, bundle)
    crls = _bundle_crls(report, bundle)
    evidence_name = _check_evidence(report, bundle)

    for label, seal, document in (
        ("evidence seal", layout.EVIDENCE_SEAL, layout.EVIDENCE),
        ("tree head seal", layout.TREE_HEAD_SEAL, layout.TREE_HEAD),
    ):
        _check_seal(report, label, bundle, seal, document, certs, crls, trusted)
    _check_pdf(report, bundle, trusted, certs)
    _check_log(report, bundle, evidence_name)
    return report


@contextmanager
def _check(report: Report, name: str) -> Iterator[Callable[[str], None]]:
    """Runs one check: what it raises becomes its failure, in words."""
    said: list[str] = []
    try:
        yield said.append
    except (SealProblem, _Missing) as exc:
        report.add(name, False, str(exc))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        report.add(name, False, f"malformed ({type(exc).__name__}: {exc})"[:300])
    else:
        report.add(name, True, "; ".join(said))


def _open(report: Report, data: bytes) -> _Bundle | None:
    bundle = _Bundle()
    with _check(report, "bundle") as ok:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError) as exc:
            raise SealProblem(f"not a ZIP archive ({exc})") from None
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SealProblem(f"{len(infos)} members: not an evidence bundle")
        for info in infos:
            if info.is_dir():
                continue
            if info.filename in bundle.members:
                raise SealProblem(f"{info.filename} appears twice")
            if info.file_size > MAX_MEMBER_BYTES:
                raise SealProblem(f"{info.filename} is larger than {MAX_MEMBER_BYTES} bytes")
            try:
                bundle.members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                raise SealProblem(f"{info.filename} cannot be read ({exc})") from None
        missing = [m for m in (layout.MANIFEST, *layout.MEMBERS) if m not in bundle.members]
        if missing:
            raise SealProblem(f"missing: {', '.join(missing)}")
        ok(f"{len(bundle.members)} members, as {layout.FORMAT} lays out")
        return bundle
    # A ZIP with members missing is still checked as far as it goes.
    return bundle if bundle.members else None


def _check_manifest(report: Report, bundle: _Bundle) -> None:
    with _check(report, "manifest") as ok:
        try:
            manifest = json.loads(bundle[layout.MANIFEST])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SealProblem("manifest.json is not JSON") from None
        if manifest.get("format") != layout.FORMAT:
            raise SealProblem(f"manifest.json is not {layout.FORMAT}")
        listed: dict[str, dict[str, object]] = manifest["members"]
        present = set(bundle.members) - {layout.MANIFEST}
        problems = [f"{name} is not listed" for name in sorted(present - set(listed))]
        problems += [f"{name} is listed but absent" for name in sorted(set(listed) - present)]
        for name in sorted(present & set(listed)):
            data = bundle.members[name]
            entry = listed[name]
            if entry.get("sha256") != hashlib.sha256(data).hexdigest() or entry.get("size") != len(
                data
            ):
                problems.append(f"{name} does not match its SHA-256")
        if problems:
            raise SealProblem("; ".join(problems))
        ok(f"SHA-256 of {len(listed)} members match")


def _load_pem(data: bytes, kind: str) -> list[bytes]:
    if not pem.detect(data):
        raise SealProblem(f"not PEM {kind}s")
    found = [der for type_name, _h, der in pem.unarmor(data, multiple=True) if type_name == kind]
    return found


def _bundle_certificates(report: Report, bundle: _Bundle) -> dict[str, list[asn1_x509.Certificate]]:
    found: dict[str, list[asn1_x509.Certificate]] = {}
    for name in (layout.SEAL_CHAIN, layout.TSA_CHAIN):
        try:
            found[name] = [
                asn1_x509.Certificate.load(d) for d in _load_pem(bundle[name], "CERTIFICATE")
            ]
            for c in found[name]:
                c.native  # noqa: B018 -- parse now, fail here
        except (SealProblem, _Missing, ValueError, TypeError) as exc:
            found[name] = []
            report.add(name, False, f"unreadable: {exc}")
    return found


def _bundle_crls(report: Report, bundle: _Bundle) -> list[asn1_crl.CertificateList]:
    try:
        crls = [
            asn1_crl.CertificateList.load(d) for d in _load_pem(bundle[layout.CRLS], "X509 CRL")
        ]
        for c in crls:
            c.native  # noqa: B018 -- parse now, fail here
        return crls
    except (SealProblem, _Missing, ValueError, TypeError) as exc:
        report.add("crls", False, f"unreadable: {exc}")
        return []


def _check_evidence(report: Report, bundle: _Bundle) -> str | None:
    """The evidence's resource name as the log names it
    (``letters/{letter}/evidence/{id}``), if evidence.json can be read."""
    evidence_name: str | None = None
    with _check(report, "evidence") as ok:
        try:
            document = json.loads(bundle[layout.EVIDENCE])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SealProblem("evidence.json is not JSON") from None
        if not str(document.get("format", "")).startswith("lre-evidence/"):
            raise SealProblem("evidence.json is not an lre-evidence document")
        evidence_id = str(document["evidenceId"])
        evidence_name = f"{document['letterId']}/evidence/{evidence_id}"
        ok(f"{document['format']} {evidence_id}, {document.get('event', '?').rsplit('/', 1)[-1]}")
    return evidence_name


def _check_seal(
    report: Report,
    label: str,
    bundle: _Bundle,
    seal_name: str,
    document_name: str,
    certs: dict[str, list[asn1_x509.Certificate]],
    crls: list[asn1_crl.CertificateList],
    trusted: list[asn1_x509.Certificate],
) -> None:
    """Six checks of one CAdES seal: document, signature, timestamp, B-LT data,
    chains to the anchors, revocation. Both chains come from the bundle."""
    seal_chain, tsa_chain = certs[layout.SEAL_CHAIN], certs[layout.TSA_CHAIN]
    bundle_certs = [*seal_chain, *tsa_chain]
    seal: cms.Seal | None = None
    signer = stamp = None
    with _check(report, f"{label}: covers the document") as ok:
        seal = cms.load(bundle[seal_name])
        cms.check_content(seal, bundle[document_name])
        ok(f"encapsulates exactly {document_name}")
    if seal is None:
        return
    with _check(report, f"{label}: signature") as ok:
        signer = cms.check_signature(seal, bundle_certs)
        ok(f"by {signer.subject.human_friendly}")
    with _check(report, f"{label}: signature timestamp") as ok:
        stamp = cms.check_timestamp(seal, bundle_certs)
        ok(f"{stamp.time:%Y-%m-%dT%H:%M:%SZ} by {stamp.tsa.subject.human_friendly}")
    with _check(report, f"{label}: validation data (B-LT)") as ok:
        carried = {c.dump() for c in seal.certificates}
        needed = [c for c in (signer, stamp.tsa if stamp else None) if c is not None]
        if any(c.dump() not in carried for c in needed):
            raise SealProblem("the seal does not carry the signer's and the TSA's certificates")
        if not seal.crls:
            raise SealProblem("the seal carries no CRL (CAdES B-T, not B-LT)")
        ok(f"{len(seal.certificates)} certificates and {len(seal.crls)} CRL(s) in the SignedData")
    if signer is None or stamp is None:
        return
    paths: list[chains.Path] = []
    name = f"{label}: certificate chains"
    try:
        if not seal_chain or seal_chain[0].dump() != signer.dump():
            raise SealProblem("seal-chain.pem does not start with the seal's certificate")
        if not tsa_chain or tsa_chain[0].dump() != stamp.tsa.dump():
            raise SealProblem("tsa-chain.pem does not start with the timestamp's certificate")
        paths = [
            chains.anchor(signer, seal_chain, trusted, stamp.time, "seal"),
            chains.anchor(stamp.tsa, tsa_chain, trusted, stamp.time, "time_stamping"),
        ]
    except SealProblem as exc:
        report.add(name, False, str(exc))
    else:
        roots = ", ".join(sorted({p.root for p in paths}))
        if all(p.anchored for p in paths):
            report.add(name, True, f"seal and TSA valid at the timestamp's time up to {roots}")
        else:
            report.unanchored(
                name,
                f"seal and TSA chains end at the bundle's own root ({roots}), "
                "which is not trusted: give --trust with the provider's root CA",
            )
    if not paths:
        report.add(f"{label}: revocation", False, "no chain to check")
        return
    with _check(report, f"{label}: revocation") as ok:
        for path in paths:
            ok(chains.check_revocation(path, crls, stamp.time))


def _check_pdf(
    report: Report,
    bundle: _Bundle,
    trusted: list[asn1_x509.Certificate],
    certs: dict[str, list[asn1_x509.Certificate]],
) -> None:
    roots = [c for chain in certs.values() for c in chain if c.self_signed]
    name = "proof PDF: PAdES signature"
    try:
        signature = pdf.check_signature(bundle[layout.PROOF_PDF], trusted, roots)
    except (SealProblem, _Missing) as exc:
        report.add(name, False, str(exc))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        report.add(name, False, f"malformed ({type(exc).__name__})")
    else:
        detail = (
            f"B-LT, intact, timestamped {signature.time:%Y-%m-%dT%H:%M:%SZ}, by {signature.signer}"
        )
        if signature.anchored:
            report.add(name, True, detail)
        else:
            report.unanchored(
                name, f"{detail}; its chain ends at the bundle's own root: give --trust"
            )
    with _check(report, "proof PDF: attachments") as ok:
        attached = list(pdf.attachments(bundle[layout.PROOF_PDF]).values())
        if bundle[layout.EVIDENCE] not in attached:
            raise SealProblem("the PDF does not embed this evidence.json")
        if bundle[layout.EVIDENCE_SEAL] not in attached:
            raise SealProblem("the PDF does not embed this evidence.p7m")
        ok("embeds exactly this evidence.json and evidence.p7m")


def _check_log(report: Report, bundle: _Bundle, evidence_name: str | None) -> None:
    with _check(report, "log leaf") as ok:
        leaf = bundle[layout.LOG_LEAF]
        try:
            record = json.loads(leaf)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SealProblem("log-leaf.json is not JSON") from None
        if record.get("format") != "lre-log/1":
            raise SealProblem("log-leaf.json is not an lre-log/1 leaf")
        if evidence_name is None or record.get("evidence") != evidence_name:
            raise SealProblem("the leaf names another evidence")
        if not evidence_name.startswith(f"{record.get('letter')}/evidence/"):
            raise SealProblem("the leaf names another letter")
        if record.get("documentSha256") != hashlib.sha256(bundle[layout.EVIDENCE]).hexdigest():
            raise SealProblem("the leaf's documentSha256 is not evidence.json's")
        if record.get("sealSha256") != hashlib.sha256(bundle[layout.EVIDENCE_SEAL]).hexdigest():
            raise SealProblem("the leaf's sealSha256 is not evidence.p7m's")
        digest = merkle.leaf_hash(leaf).hex()
        ok(f"names this evidence, its SHA-256 and its seal's; leaf hash {digest[:16]}…")
    with _check(report, "inclusion proof") as ok:
        try:
            proof = json.loads(bundle[layout.INCLUSION_PROOF])
            head = json.loads(bundle[layout.TREE_HEAD])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SealProblem("inclusion-proof.json or tree-head.json is not JSON") from None
        if proof.get("format") != layout.INCLUSION_FORMAT:
            raise SealProblem(f"inclusion-proof.json is not {layout.INCLUSION_FORMAT}")
        # /2 adds the head's number and its predecessor; size and root are the same.
        if head.get("format") not in ("lre-tree-head/1", "lre-tree-head/2"):
            raise SealProblem("tree-head.json is not an lre-tree-head document")
        size, index = head["treeSize"], proof["leafIndex"]
        if not isinstance(size, int) or not isinstance(index, int) or proof.get("treeSize") != size:
            raise SealProblem("the proof is not for the tree head's size")
        path = [bytes.fromhex(h) for h in proof["auditPath"]]
        computed = merkle.root_from_inclusion_proof(index, size, bundle[layout.LOG_LEAF], path)
        if computed.hex() != head["rootHash"]:
            raise SealProblem("the audit path does not lead to the tree head's root")
        ok(f"leaf {index} of {size} leads to the head's root {computed.hex()[:16]}…")
