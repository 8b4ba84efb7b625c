"""PDF proofs of evidences, for people: rendered and assembled here, signed by the signer.

``proof_pdf(evidence, seal, signer)`` is what the server calls: the PDF/A-3
proof of one evidence (``render_proof``), signed PAdES B-LT in one pass
(``lre.server.proofs.pades``): the signer process computes only the CMS over
the digest, with the seal key and its TSA. Nothing here holds a key.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from lre.server.adapters.signer import SignerClient
from lre.server.proofs.document import ProofInputError, read
from lre.server.proofs.pades import ProofSigner
from lre.server.proofs.render import attachment_names, render_document, render_proof
from lre.server.proofs.summary import render_summary

__all__ = [
    "ProofInputError",
    "ProofRenderer",
    "attachment_names",
    "proof_pdf",
    "render_proof",
    "summary_pdf",
]

# ``proof_pdf`` with its signer bound, as the services take it. It takes
# milliseconds and a signer call: called where an e-mail is composed (the
# outbox worker) or a proof is asked for, never while a deposit or a decision
# holds its transaction.
ProofRenderer = Callable[[bytes, bytes], bytes]

# One ProofSigner (and its cached validation data) per signer client.
_signers: weakref.WeakKeyDictionary[SignerClient, ProofSigner] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def proof_pdf(evidence: bytes, seal: bytes, signer: SignerClient) -> bytes:
    """The signed PDF proof of ``evidence`` (canonical JSON) and its CAdES ``seal`` (DER).

    Raises ProofInputError if the seal is not over this evidence, and
    DependencyUnavailable while the signer cannot sign.
    """
    doc = read(evidence, seal)
    return _signer_of(signer).sign(render_document(doc, evidence, seal), doc.seal.subject)


def summary_pdf(document: bytes, seal: bytes, signer: SignerClient) -> bytes:
    """The signed PDF of a mailing's sealed summary (lre.server.proofs.summary)."""
    pdf, subject = render_summary(document, seal)
    return _signer_of(signer).sign(pdf, subject)


def _signer_of(signer: SignerClient) -> ProofSigner:
    with _lock:
        proof_signer = _signers.get(signer)
        if proof_signer is None:
            proof_signer = _signers[signer] = ProofSigner(signer)
    return proof_signer
