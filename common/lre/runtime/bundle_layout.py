"""The bundle's layout (``lre-evidence-bundle/1``), shared by the builder
(``lre.server.proofs.bundle``) and the verifier: one ZIP, flat, these names.

docs/evidence.md describes each member. ``manifest.json`` names every other
member with its SHA-256 and size, and the provider the bundle claims to be
from; it is not signed (the seals are what prove origin): it tells damage
from forgery and names the damaged part, and what it claims must be what
the seals say (``lre.verify.claim``).
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
# The evidence seal extended with archive timestamps (CAdES B-LTA), once the
# provider has renewed it; evidence.p7m stays the seal the log names.
EVIDENCE_ARCHIVE_SEAL = "evidence-archive.p7m"

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
OPTIONAL = (EVIDENCE_ARCHIVE_SEAL,)

README_TEMPLATE = """\
Evidence bundle ({format}) for evidence {evidence_id}.

Nothing in this file is to be trusted: it is fixed text (lre-verify refuses
any other), and the certificates to trust come from the provider's published
trust list, never from the bundle.

Check everything at once (installed with the lre package; no network):
    lre-verify {{this file}} --trust provider-root-ca.pem \\
        --provider provider-certificates.pem

Or by hand, with the provider's root CA certificate you obtained yourself
(then check that the signer is the provider's seal certificate):
    openssl cms -verify -inform DER -in evidence.p7m -crl_check \\
        -CAfile provider-root-ca.pem -out checked.json && cmp checked.json evidence.json
    openssl cms -verify -inform DER -in tree-head.p7m -crl_check \\
        -CAfile provider-root-ca.pem -out head.json && cmp head.json tree-head.json
    pdfsig proof.pdf
(pdfsig must say "Total document signed": "Not total document signed" means
bytes were added to the proof after it was sealed.)
The inclusion proof (RFC 9162, 2.1.3.2) leads from SHA-256(0x00 || log-leaf.json)
to the rootHash of tree-head.json; log-leaf.json names the SHA-256 of
evidence.json and evidence.p7m. manifest.json lists the SHA-256 of every member.
"""
# Bundles made before the text above say this; still accepted as they are.
PREVIOUS_README = """\
Evidence bundle ({format}) for evidence {evidence_id}.

Check everything at once (installed with the lre package; no network):
    lre-verify {{this file}} --trust provider-root-ca.pem

Or by hand, with the provider's root CA certificate you obtained yourself:
    openssl cms -verify -inform DER -in evidence.p7m -crl_check \
        -CAfile provider-root-ca.pem -out checked.json && cmp checked.json evidence.json
    openssl cms -verify -inform DER -in tree-head.p7m -crl_check \
        -CAfile provider-root-ca.pem -out head.json && cmp head.json tree-head.json
    pdfsig proof.pdf
The inclusion proof (RFC 9162, 2.1.3.2) leads from SHA-256(0x00 || log-leaf.json)
to the rootHash of tree-head.json; log-leaf.json names the SHA-256 of
evidence.json and evidence.p7m. manifest.json lists the SHA-256 of every member.
"""


def readme(evidence_id: str, template: str = README_TEMPLATE) -> str:
    """README.txt of the bundle of ``evidence_id``: fixed text, so that it is
    covered by the sealed evidence id and nothing rides in it."""
    return template.format(format=FORMAT, evidence_id=evidence_id)
