"""Page 1 of a PDF proof of every event, as PNG, for a person to look at
(each proof must read as an official proof, in both languages).

Not a benchmark: one signer process (its own token and PKI in a temporary
folder), one realistic evidence per event sealed and made into its signed
PDF proof exactly as the server does (``proof_pdf``), then
``pdftoppm -png -r 60 -f 1 -l 1``. Writes NAME.pdf and NAME.png per event.

Usage: python bench/proof_screens.py [--out build/screens]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import run_signer
from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import (
    Authentication,
    EvidenceDocument,
    IssuerDetails,
    PartDigest,
    PartyDetails,
)
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import EvidenceEvent
from lre.server.proofs import proof_pdf
from lre.signer.devsetup import dev_setup

NAMES = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE: "deposit",
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE: "notification",
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE: "acceptance",
    EvidenceEvent.CONSIGNMENT_REJECTION: "refusal",
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: "non-claim",
    EvidenceEvent.CONTENT_HANDOVER: "handover",
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: "notification-failure",
}
REASONS = {
    EvidenceEvent.CONSIGNMENT_REJECTION: (
        "Je ne connais pas cet expéditeur",
        "refused_by_recipient",
    ),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: ("550 5.1.1 mailbox unknown", "bounced"),
}
# The events a recipient authenticated for.
RECIPIENT_ACTS = {
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
    EvidenceEvent.CONSIGNMENT_REJECTION,
    EvidenceEvent.CONTENT_HANDOVER,
}


def evidence(client: SignerClient, event: EvidenceEvent) -> bytes:
    now = dt.datetime.now(dt.UTC)
    submitted = now - dt.timedelta(days=3, hours=2)
    reason, code = REASONS.get(event, (None, None))
    return EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=event,
        event_time=now,
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of("LRE Démo Prestataire SAS", client.certificate_chain("seal")[0]),
        sender=PartyDetails("Société Dupont & Fils", "courrier@dupont.example", str(uuid.uuid4())),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", str(uuid.uuid4())),
        letter_id=f"letters/{uuid.uuid4()}",
        submission_time=submitted,
        parts=(
            PartDigest("mise-en-demeure.pdf", "application/pdf", 183422, "3f" * 32),
            PartDigest("annexe n°1 - état des lieux.pdf", "application/pdf", 40211, "a7" * 32),
        ),
        # As the server records them: the sender's session in the deposit only.
        sender_authentication=(
            Authentication(("knowledge", "possession", "otp"), AssuranceLevel.HIGH, submitted)
            if event is EvidenceEvent.SUBMISSION_ACCEPTANCE
            else None
        ),
        recipient_authentication=(
            Authentication(("knowledge", "possession", "otp"), AssuranceLevel.SUBSTANTIAL, now)
            if event in RECIPIENT_ACTS
            else None
        ),
        reason=reason,
        reason_code=code,
    ).to_json()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("build/screens"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    var = Path(tempfile.mkdtemp(prefix="lre-screens-"))
    dev_setup(var)
    signer, address = run_signer(var, processes=1)
    client = SignerClient(address, timeout_s=60)
    try:
        for event, name in NAMES.items():
            document = evidence(client, event)
            pdf = args.out / f"{name}.pdf"
            pdf.write_bytes(proof_pdf(document, client.seal(document), client))
            subprocess.run(
                ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile",
                 str(pdf), str(args.out / name)],
                check=True,
            )  # fmt: skip
            print(args.out / f"{name}.png")
    finally:
        client.close()
        signer.terminate()
        signer.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
