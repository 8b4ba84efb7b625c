"""`lre-client mailing`: one document to several recipients in one deposit,
some refused (no consent, no such party), the others each with a letter of
their own; one recipient accepts and downloads; the mailing's progress and its
CSV report."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from lre.client.channels import bearer
from lre.client.walkthrough import CHUNK, Walkthrough
from lre.v1 import custody_pb2, identity_pb2


class MailingWalkthrough(Walkthrough):
    """A property manager's general-assembly notice to three co-owners and a stranger."""

    def run(self, document: Path) -> list[str]:
        self.say("1. Registering and proofing a property manager and three co-owners")
        sender, sender_token = self.party(
            "syndic",
            self.sender_identity,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Demo Syndic SARL",
            email=f"syndic-{self.run_id}@example.org",
        )
        owners = []
        for label in ("owner-a", "owner-b", "owner-c"):
            owners.append(
                self.party(
                    label,
                    self.recipient_identity,
                    kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                    given_name="Co-owner",
                    family_name=label,
                    email=f"{label}-{self.run_id}@example.org",
                )
            )
        for i, (owner, owner_token) in enumerate(owners[:2]):
            self.recipient_identity.GrantConsent(
                identity_pb2.GrantConsentRequest(
                    request_id=f"{self.run_id}-consent-{i}",
                    recipient=owner,
                    sender=sender,
                    method="walkthrough",
                ),
                metadata=bearer(owner_token),  # consent is the recipient's own
            )
        self.say("  owners a and b consent; owner c does not")
        recipients = [(owner, f"lot {i + 1}") for i, (owner, _) in enumerate(owners)]
        recipients.append((f"parties/{uuid.uuid4()}", "lot 4"))
        self.say(f"2. Depositing {document} once for {len(recipients)} recipients")
        data = document.read_bytes()
        mailing = self.sender_custody.DepositMailing(
            mailing_requests(
                f"{self.run_id}-mailing",
                "general assembly",
                recipients,
                [(document.name, "application/octet-stream", data)],
            ),
            metadata=bearer(sender_token),
            timeout=120,
        )
        self.say(
            f"  {mailing.name}: {mailing.letter_count} letters,"
            f" {mailing.refused_count} refused {dict(mailing.refusals)}"
        )
        for r in mailing.recipients:
            outcome = r.letter
            if not outcome:
                # The sealed rejection, fetched by the name the answer gives.
                sealed = self.sender_custody.GetEvidence(
                    custody_pb2.GetEvidenceRequest(name=r.refusal.evidence.name),
                    metadata=bearer(sender_token),
                )
                outcome = (
                    f"refused ({r.refusal.reason_code}, rejection sealed:"
                    f" {len(sealed.seal)}-byte seal, {sealed.name})"
                )
            self.say(f"  {r.letter_reference}: {outcome}")
        first = mailing.recipients[0].letter
        letter = self.sender_custody.GetLetter(
            custody_pb2.GetLetterRequest(name=first), metadata=bearer(sender_token)
        )
        self.say("3. Waiting for the notices")
        self.notification(letter.reference, f"owner-a-{self.run_id}@example.org")
        self.say("4. Owner a accepts and downloads")
        owner_token = owners[0][1]
        _, content = self.accept_and_download(first, owner_token)
        self.say(f"  content identical: {content == data}")
        progress = self.sender_custody.GetMailing(
            custody_pb2.GetMailingRequest(name=mailing.name), metadata=bearer(sender_token)
        ).progress
        self.say(
            f"  progress: notified {progress.notified}, accepted {progress.accepted},"
            f" refused {progress.refused}, expired {progress.expired}"
        )
        self.out.mkdir(parents=True, exist_ok=True)
        report = self.out / "mailing-report.csv"
        report.write_bytes(
            b"".join(
                c.data
                for c in self.sender_custody.GetMailingReport(
                    custody_pb2.GetMailingReportRequest(name=mailing.name),
                    metadata=bearer(sender_token),
                )
            )
        )
        self.say(f"5. The mailing's report: {report}")
        return self.write_evidence(
            first, sender_token, "Verify the accepted letter's evidence with:"
        )


def mailing_requests(
    request_id: str,
    reference: str,
    recipients: list[tuple[str, str]],
    parts: list[tuple[str, str, bytes]],
) -> Iterator[custody_pb2.DepositMailingRequest]:
    """A DepositMailing stream: the envelope, then each part's chunks once.
    ``recipients``: (party name, letter reference); ``parts``: (file name, media type, data)."""
    yield custody_pb2.DepositMailingRequest(
        envelope=custody_pb2.MailingEnvelope(
            request_id=request_id,
            reference=reference,
            recipients=[
                custody_pb2.MailingRecipient(recipient=r, letter_reference=ref)
                for r, ref in recipients
            ],
            parts=[
                custody_pb2.ContentPart(filename=f, media_type=m, size_bytes=len(d))
                for f, m, d in parts
            ],
        )
    )
    for index, (_, _, data) in enumerate(parts):
        for offset in range(0, len(data), CHUNK):
            yield custody_pb2.DepositMailingRequest(
                chunk=custody_pb2.ContentChunk(part_index=index, data=data[offset : offset + CHUNK])
            )
