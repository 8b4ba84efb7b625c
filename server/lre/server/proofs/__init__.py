"""PDF proofs of evidences, for people: rendered here, signed by the signer.

``proof_pdf(evidence, seal, signer)`` is what the server calls: the PDF/A-3
proof of one evidence (``render_proof``), signed PAdES B-LT with the seal
key by the signer process (``SignerClient.sign_pdf``). Nothing here holds a key.
"""

from __future__ import annotations

from collections.abc import Callable

from lre.server.adapters.signer import SignerClient
from lre.server.proofs.document import ProofInputError
from lre.server.proofs.render import attachment_names, render_proof

__all__ = ["ProofInputError", "ProofRenderer", "attachment_names", "proof_pdf", "render_proof"]

# ``proof_pdf`` with its signer bound, as the services take it. It takes tenths
# of a second: called where an e-mail is composed (the outbox worker) or a proof
# is asked for, never while a deposit or a decision holds its transaction.
ProofRenderer = Callable[[bytes, bytes], bytes]


def proof_pdf(evidence: bytes, seal: bytes, signer: SignerClient) -> bytes:
    """The signed PDF proof of ``evidence`` (canonical JSON) and its CAdES ``seal`` (DER).

    Raises ProofInputError if the seal is not over this evidence, and
    DependencyUnavailable while the signer cannot sign.
    """
    return signer.sign_pdf(render_proof(evidence, seal))
