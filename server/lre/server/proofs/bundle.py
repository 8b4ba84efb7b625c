"""The offline evidence bundle (``lre-evidence-bundle/1``): one ZIP with
everything a third party needs to check one evidence without us.

A pure builder: the caller gathers the pieces (the evidence and its seal,
the signed PDF proof, the certificate chains, the inclusion proof of the
evidence's log leaf into a sealed tree head and that head), this lays them
out as ``lre.runtime.bundle_layout`` says and ``lre-verify`` reads them. The layout
and each member are described in docs/evidence.md.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from io import BytesIO

from asn1crypto import cms, pem

from lre.runtime import bundle_layout as layout

# Fixed member times: the same pieces always make the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_bundle(
    *,
    evidence: bytes,
    seal: bytes,
    proof_pdf: bytes,
    seal_chain: Sequence[bytes],
    tsa_chain: Sequence[bytes],
    leaf: bytes,
    leaf_index: int,
    audit_path: Sequence[bytes],
    tree_head: bytes,
    tree_head_seal: bytes,
    crls: Sequence[bytes] | None = None,
) -> bytes:
    """The bundle ZIP of one evidence.

    ``evidence`` is the sealed canonical JSON and ``seal`` its CAdES seal
    (DER); ``proof_pdf`` the signed PDF proof; ``seal_chain`` / ``tsa_chain``
    the DER certificates leaf first (``SignerClient.certificate_chain``);
    ``leaf``, ``leaf_index`` and ``audit_path`` the evidence's log entry and
    its RFC 9162 inclusion proof (``EventLog.inclusion``) into the head whose
    document and seal are ``tree_head`` / ``tree_head_seal``. ``crls`` (DER)
    default to those the evidence seal carries (it is CAdES B-LT).
    """
    head = json.loads(tree_head)
    evidence_id = json.loads(evidence)["evidenceId"]
    if crls is None:
        crls = [c.chosen.dump() for c in cms.ContentInfo.load(seal)["content"]["crls"] or []]
    inclusion = {
        "format": layout.INCLUSION_FORMAT,
        "hashAlgorithm": "SHA-256 (RFC 9162)",
        "leafIndex": leaf_index,
        "treeSize": head["treeSize"],
        "auditPath": [h.hex() for h in audit_path],
    }
    members = {
        layout.EVIDENCE: evidence,
        layout.EVIDENCE_SEAL: seal,
        layout.PROOF_PDF: proof_pdf,
        layout.SEAL_CHAIN: _pem("CERTIFICATE", seal_chain),
        layout.TSA_CHAIN: _pem("CERTIFICATE", tsa_chain),
        layout.CRLS: _pem("X509 CRL", crls),
        layout.LOG_LEAF: leaf,
        layout.INCLUSION_PROOF: _json(inclusion),
        layout.TREE_HEAD: tree_head,
        layout.TREE_HEAD_SEAL: tree_head_seal,
        layout.README: layout.readme(evidence_id).encode(),
    }
    manifest = {
        "format": layout.FORMAT,
        "evidenceId": evidence_id,
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()
        },
    }
    return zip_members({layout.MANIFEST: _json(manifest), **members})


def zip_members(members: dict[str, bytes]) -> bytes:
    """The ZIP of ``members`` in that order, with fixed times."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _pem(kind: str, ders: Sequence[bytes]) -> bytes:
    return b"".join(pem.armor(kind, der) for der in ders)


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"
