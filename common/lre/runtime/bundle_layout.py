"""The bundle's layout (``lre-evidence-bundle/1``), shared by the builder
(``lre.server.proofs.bundle``) and the verifier: one ZIP, flat, these names.

docs/evidence.md describes each member. ``manifest.json`` names every other
member with its SHA-256 and size; it is not signed (the seals are what
prove origin), it tells damage from forgery and names the damaged part.
"""

from __future__ import annotations

FORMAT = "lre-evidence-bundle/1"
INCLUSION_FORMAT = "lre-inclusion-proof/1"

MANIFEST = "manifest.json"
EVIDENCE = "evidence.json"  # the sealed canonical JSON (lre-evidence/1)
EVIDENCE_SEAL = "evidence.p7m"  # its CAdES B-LT seal, DER
PROOF_PDF = "proof.pdf"  # the PAdES B-LT proof embedding both
SEAL_CHAIN = "seal-chain.pem"  # seal certificate, then its CAs up to the root
TSA_CHAIN = "tsa-chain.pem"  # TSA certificate, then its CAs up to the root
CRLS = "crls.pem"  # the CAs' CRLs
LOG_LEAF = "log-leaf.json"  # the evidence's leaf in the log (lre-log/1)
INCLUSION_PROOF = "inclusion-proof.json"  # RFC 9162 audit path into the head
TREE_HEAD = "tree-head.json"  # the sealed tree head document (lre-tree-head/1 or /2)
TREE_HEAD_SEAL = "tree-head.p7m"  # its CAdES seal, DER
README = "README.txt"  # how to check it by hand

MEMBERS = (
    EVIDENCE,
    EVIDENCE_SEAL,
    PROOF_PDF,
    SEAL_CHAIN,
    TSA_CHAIN,
    CRLS,
    LOG_LEAF,
    INCLUSION_PROOF,
    TREE_HEAD,
    TREE_HEAD_SEAL,
    README,
)
