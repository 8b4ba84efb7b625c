"""The offline evidence bundle (``lre-evidence-bundle/1``): one ZIP with
everything a third party needs to check one evidence without us.

A pure builder: the caller gathers the pieces (the evidence and its seal,
the signed PDF proof, the certificate chains, the inclusion proof of the
evidence's log leaf into a sealed tree head and that head), this lays them
out as ``lre.runtime.bundle_layout`` says and ``lre-verify`` reads them. The layout
and each member are described in docs/evidence.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Sequence
from io import BytesIO

from asn1crypto import cms, pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader

from lre.runtime import bundle_layout as layout

# Fixed member times: the same pieces always make the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_bundle(
    *,
    evidence: bytes,
    seal: bytes,
    proof_pdf: bytes,
    leaf: bytes,
    leaf_index: int,
    audit_path: Sequence[bytes],
    tree_head: bytes,
    tree_head_seal: bytes,
    crls: Sequence[bytes] | None = None,
    archive_seal: bytes | None = None,
) -> bytes:
    """The bundle ZIP of one evidence.

    ``evidence`` is the sealed canonical JSON and ``seal`` its CAdES seal
    (DER); ``proof_pdf`` the signed PDF proof; ``leaf``, ``leaf_index`` and
    ``audit_path`` the evidence's log entry and its RFC 9162 inclusion proof
    (``EventLog.inclusion``) into the head whose document and seal are
    ``tree_head`` / ``tree_head_seal``. ``crls`` (DER) default to those the
    two seals carry (they are CAdES B-LT). ``archive_seal`` is ``seal``
    extended with its archive timestamps (B-LTA), once there are any.

    The certificate chains are those the seals themselves carry: the chain
    that was valid when each was sealed, not the signer's current one, so a
    bundle of evidence sealed before a rotation of the seal or TSA key (or
    stamped by another configured TSA) names the certificates that signed
    it. ``seal-chain.pem`` holds the evidence seal's chain, then the tree
    head seal's when another certificate sealed it; ``tsa-chain.pem`` the
    same for their signature timestamps.
    """
    seals = (seal, tree_head_seal)
    seal_chain, tsa_chain = seal_chains(seals)
    head = json.loads(tree_head)
    evidence_id = json.loads(evidence)["evidenceId"]
    if crls is None:
        carried = (cms.ContentInfo.load(s)["content"]["crls"] or [] for s in seals)
        crls = list(dict.fromkeys(c.chosen.dump() for each in carried for c in each))
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
    if archive_seal is not None:
        members[layout.EVIDENCE_ARCHIVE_SEAL] = archive_seal
    manifest = {
        "format": layout.FORMAT,
        "evidenceId": evidence_id,
        "provider": provider_claim(evidence, (tree_head_seal,), proof_pdf),
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()
        },
    }
    return zip_members({layout.MANIFEST: _json(manifest), **members})


def provider_claim(evidence: bytes, seals: Sequence[bytes], proof_pdf: bytes) -> dict[str, object]:
    """Whom the bundle claims to be from: the evidence's issuer (its name and
    seal certificate, as sealed) and any other seal certificate that signed
    ``seals`` or the PDF proof (one renewed since the evidence was sealed),
    as SHA-256 in hex. The verifier holds it against every signer."""
    issuer = json.loads(evidence)["issuer"]
    claimed = [base64.b64decode(issuer["certificate"]["digestValue"]).hex()]
    signers = [chain[0] for chain in (_chain_list(s) for s in seals)]
    signature = PdfFileReader(BytesIO(proof_pdf)).embedded_signatures[0]
    signers.append(signature.signer_cert.dump())
    for der in signers:
        digest = hashlib.sha256(der).hexdigest()
        if digest not in claimed:
            claimed.append(digest)
    return {"name": issuer["name"], "sealCertificates": claimed}


def _chain_list(seal: bytes) -> list[bytes]:
    chain, _tsa = seal_chains([seal])
    return chain


def seal_chains(seals: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The seal chains and the TSA chains of ``seals`` (CAdES B-LT, each
    carrying its chains), DER, each chain leaf first then its CAs up to the
    root, each distinct chain once, in the order of ``seals``."""
    seal_chains: dict[tuple[bytes, ...], None] = {}
    tsa_chains: dict[tuple[bytes, ...], None] = {}
    for der in seals:
        signed = cms.ContentInfo.load(der)["content"]
        pool = [c.chosen for c in signed["certificates"] or [] if c.name == "certificate"]
        (signer_info,) = signed["signer_infos"]
        seal_chains[tuple(_chain(_signer(signer_info, pool), pool))] = None
        for attribute in signer_info["unsigned_attrs"] or []:
            if attribute["type"].native != "signature_time_stamp_token":
                continue
            token = attribute["values"][0]["content"]
            token_pool = [c.chosen for c in token["certificates"] or [] if c.name == "certificate"]
            (token_signer,) = token["signer_infos"]
            both = [*token_pool, *pool]
            tsa_chains[tuple(_chain(_signer(token_signer, both), both))] = None
    return (
        [c for chain in seal_chains for c in chain],
        [c for chain in tsa_chains for c in chain],
    )


def _signer(signer_info: cms.SignerInfo, pool: list[x509.Certificate]) -> x509.Certificate:
    sid = signer_info["sid"]
    for certificate in pool:
        if sid.name == "issuer_and_serial_number":
            if certificate.issuer_serial == _issuer_serial(sid.chosen):
                return certificate
        elif certificate.key_identifier == sid.chosen.native:
            return certificate
    raise ValueError("a seal does not carry its signer's certificate")


def _issuer_serial(value: cms.IssuerAndSerialNumber) -> bytes:
    """As asn1crypto's ``Certificate.issuer_serial`` spells it."""
    serial: int = value["serial_number"].native
    issuer: bytes = value["issuer"].sha256
    return issuer + b":" + str(serial).encode("ascii")


def _chain(leaf: x509.Certificate, pool: list[x509.Certificate]) -> list[bytes]:
    """``leaf`` then its issuers found in ``pool``, up to a self-signed root."""
    chain = [leaf]
    while not chain[-1].self_issued and len(chain) < 8:
        current = chain[-1]
        issuers = [
            c
            for c in pool
            if c.subject == current.issuer
            and c.ca
            and (
                current.authority_key_identifier is None
                or c.key_identifier == current.authority_key_identifier
            )
        ]
        if not issuers:
            break
        chain.append(issuers[0])
    return [c.dump() for c in chain]


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
