"""The log part of a bundle: the evidence's leaf, and its inclusion proof
into the sealed tree head (RFC 9162); that the evidence names as its issuer
the certificate that sealed it; and that README.txt is the fixed text for
this evidence (it is no seal's: nothing may ride in it)."""

from __future__ import annotations

import base64
import hashlib

from asn1crypto import x509 as asn1_x509

from lre.runtime import bundle_layout as layout
from lre.verify import merkle
from lre.verify.checks import Bundle, check
from lre.verify.cms import SealProblem
from lre.verify.provider import load_json
from lre.verify.report import Report

INCLUSION_FIELDS = {"format", "hashAlgorithm", "leafIndex", "treeSize", "auditPath"}
INCLUSION_HASH = "SHA-256 (RFC 9162)"


def check_issuer(report: Report, bundle: Bundle, signer: asn1_x509.Certificate | None) -> None:
    """The evidence names as its issuer's certificate the one that sealed it."""
    with check(report, "evidence issuer") as ok:
        document = load_json(bundle[layout.EVIDENCE], "evidence.json")
        issuer = document.get("issuer") if isinstance(document, dict) else None
        named = issuer.get("certificate") if isinstance(issuer, dict) else None
        if not isinstance(named, dict):
            raise SealProblem("the evidence names no issuer certificate")
        if signer is None:
            raise SealProblem("the evidence seal has no signer to compare with")
        digest = base64.b64encode(hashlib.sha256(signer.dump()).digest()).decode()
        if named.get("digestValue") != digest or named.get("serialNumber") != str(
            signer.serial_number
        ):
            raise SealProblem(
                f"the evidence names another issuer certificate than the one that sealed it "
                f"({signer.subject.human_friendly})"
            )
        name = issuer.get("name") if isinstance(issuer, dict) else None
        ok(f"{name}: the certificate that sealed it")


def check_log(report: Report, bundle: Bundle, evidence_name: str | None) -> None:
    with check(report, "log leaf") as ok:
        leaf = bundle[layout.LOG_LEAF]
        record = load_json(leaf, "log-leaf.json")
        if not isinstance(record, dict):
            raise SealProblem("log-leaf.json is not an lre-log/1 leaf")
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
    with check(report, "inclusion proof") as ok:
        proof = load_json(bundle[layout.INCLUSION_PROOF], "inclusion-proof.json")
        head = load_json(bundle[layout.TREE_HEAD], "tree-head.json")
        if not isinstance(proof, dict) or not isinstance(head, dict):
            raise SealProblem("inclusion-proof.json or tree-head.json is not an object")
        if proof.get("format") != layout.INCLUSION_FORMAT:
            raise SealProblem(f"inclusion-proof.json is not {layout.INCLUSION_FORMAT}")
        # No seal covers it: nothing in it but what the proof is computed from.
        if set(proof) != INCLUSION_FIELDS or proof["hashAlgorithm"] != INCLUSION_HASH:
            raise SealProblem(
                "inclusion-proof.json holds more than the proof, or names another hash"
            )
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


def check_readme(report: Report, bundle: Bundle) -> None:
    with check(report, "readme") as ok:
        document = load_json(bundle[layout.EVIDENCE], "evidence.json")
        evidence_id = str(document.get("evidenceId")) if isinstance(document, dict) else ""
        text = bundle[layout.README]
        known = (layout.README_TEMPLATE, layout.PREVIOUS_README)
        if text not in {layout.readme(evidence_id, t).encode() for t in known}:
            raise SealProblem(
                "README.txt is not the fixed text of this evidence's bundle: "
                "what it says is covered by no seal"
            )
        ok("the fixed text for this evidence")
