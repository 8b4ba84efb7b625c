"""PDF proofs of evidences, for people: what the server renders and the signer signs.

``render_proof(evidence, seal)`` makes the unsigned PDF/A-3 proof;
``SignerClient.sign_pdf`` (lre.server.signing) has the signer seal it
(PAdES B-LT). Nothing here holds a key.
"""

from lre.server.proofs.document import ProofInputError
from lre.server.proofs.render import attachment_names, render_proof

__all__ = ["ProofInputError", "attachment_names", "render_proof"]
