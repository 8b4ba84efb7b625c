"""What the recipient is told, and how they can check it came from us.

The notification names no sender: not in the subject, the body, the headers
or the links (CPCE R53-3 I). Its verification code is an HMAC of the letter
under the server's secrets key, so nothing more is stored and a phishing
copy cannot invent a valid one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from email import charset
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from lre.server.adapters import at_rest
from lre.server.adapters.mail import parse_delivery_status
from lre.server.domain.errors import InvalidArgument, NotFound
from lre.server.domain.evidence import PartyDetails
from lre.server.domain.identity import NO_SOURCE, Source
from lre.server.domain.letters import EvidenceEvent, OutboxKind
from lre.server.domain.records import Bounce, EvidenceWithProof, LetterRecord, MessageRecord
from lre.server.domain.window import AcceptanceWindow
from lre.server.proofs.document import read_seal
from lre.server.services.notice_codes import NoticeCodes
from lre.server.services.proofs import StoredProofs
from lre.server.storage.store import Store, Stores

# Quoted-printable headers: ASCII-safe, and the reference stays readable in the Subject.
UTF8 = charset.Charset("utf-8")
UTF8.header_encoding = charset.QP
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MONTHS_FR = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


@dataclass(frozen=True)
class NotificationPolicy:
    secrets_key: at_rest.SecretsKeys
    mail_from: str
    portal_url: str
    provider_name: str = "LRE provider"


PROOF_TITLES = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE: ("Preuve de dépôt", "Proof of deposit"),
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE: ("Preuve d'acceptation", "Proof of acceptance"),
    EvidenceEvent.CONSIGNMENT_REJECTION: ("Preuve de refus", "Proof of refusal"),
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: ("Preuve de non-réclamation", "Proof of non-claim"),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: (
        "Échec de la notification",
        "Notification failure",
    ),
    EvidenceEvent.CONTENT_HANDOVER: ("Preuve de remise du contenu", "Proof of content handover"),
}
# Who receives an outbox PROOF row: its payload's "to", the sender when absent.
PROOF_TO_RECIPIENT = "recipient"


def evidence_recipient(document: bytes) -> str:
    """The recipient as the evidence names it (the sender may know it)."""
    recipient = json.loads(document).get("recipient", {})
    return str(recipient.get("name") or recipient.get("email") or "")


@dataclass(frozen=True)
class Verification:
    genuine: bool
    acceptance_deadline: dt.datetime | None


@dataclass(frozen=True)
class LetterClaim:
    letter_id: uuid.UUID
    recipient_id: uuid.UUID
    acceptance_deadline: dt.datetime | None
    # The addressee already has credentials: it signs in rather than enrols.
    enrolled: bool


class NotificationService:
    def __init__(
        self,
        stores: Stores,
        policy: NotificationPolicy,
        proofs: StoredProofs,
        codes: NoticeCodes | None = None,
    ) -> None:
        self._codes = codes or NoticeCodes()
        self._stores = stores
        self._policy = policy
        self._proofs = proofs
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html.j2"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def verification_code(self, letter_id: uuid.UUID, key: bytes | None = None) -> str:
        """The code printed in the letter's notification (under the current
        secrets key unless ``key`` is given)."""
        digest = hmac.new(
            key or self._policy.secrets_key.current,
            b"notification:" + letter_id.bytes,
            hashlib.sha256,
        ).digest()
        code = base64.b32encode(digest).decode()[:10]
        return f"{code[:5]}-{code[5:]}"

    def letter_waiting(
        self,
        message: MessageRecord,
        letter: LetterRecord,
        recipient: PartyDetails,
        now: dt.datetime,
    ) -> Message:
        """The recipient's notification; ``now`` is when the window opens."""
        return self._to_recipient(message, letter, recipient, AcceptanceWindow(now), False)

    def reminder(
        self,
        message: MessageRecord,
        letter: LetterRecord,
        recipient: PartyDetails,
        now: dt.datetime,
    ) -> Message:
        """The same notice again, during the window; it names no sender either."""
        assert letter.notification_time is not None
        window = AcceptanceWindow(letter.notification_time)
        return self._to_recipient(message, letter, recipient, window, True)

    def _to_recipient(
        self,
        message: MessageRecord,
        letter: LetterRecord,
        recipient: PartyDetails,
        window: AcceptanceWindow,
        reminder: bool,
    ) -> Message:
        last_day = window.last_day
        context = {
            "reference": letter.reference,
            "code": self.verification_code(letter.id),
            "deadline_fr": f"{last_day.day} {MONTHS_FR[last_day.month - 1]} {last_day.year}",
            "deadline_en": last_day.strftime("%d %B %Y"),
            "portal_url": self._policy.portal_url,
            "reminder": reminder,
        }
        subject = (
            "Lettre recommandée électronique en attente / Registered electronic letter waiting"
            f" - {letter.reference}"
        )
        return self._email(
            message,
            recipient.email,
            ("Rappel / Reminder: " if reminder else "") + subject,
            OutboxKind.LETTER_WAITING,
            context,
        )

    def proof(
        self,
        message: MessageRecord,
        letter: LetterRecord,
        sender: PartyDetails,
        recipient: PartyDetails,
        evidence: EvidenceWithProof,
    ) -> Message:
        """A party's copy of a proof: the signed PDF, and the evidence and its
        seal as sealed. The sender's unless the row says it is the recipient's
        (their own acceptance and handover, once the sender is known to them).
        The PDF is the stored one (made now if this is its first use); raises
        DependencyUnavailable while the signer cannot sign it."""
        what_fr, what_en = PROOF_TITLES[evidence.event]
        to_recipient = message.payload.get("to") == PROOF_TO_RECIPIENT
        stamped = read_seal(evidence.document, evidence.seal)
        stem = f"{evidence.event.value}-{letter.reference}"
        context = {
            "what_fr": what_fr,
            "what_en": what_en,
            "reference": letter.reference,
            # The other party, as the evidence names it.
            "party": sender.name if to_recipient else evidence_recipient(evidence.document),
            # The qualified time of the seal: the one the PDF prints, the legal one.
            "when": stamped.timestamp_time.strftime("%Y-%m-%d %H:%M:%S"),
            "provider": self._policy.provider_name,
            "pdf_file": f"{stem}.pdf",
            "evidence_file": f"{stem}.json",
            "seal_file": f"{stem}.p7m",
        }
        return self._email(
            message,
            recipient.email if to_recipient else sender.email,
            f"{what_fr} / {what_en} - {letter.reference}",
            OutboxKind.PROOF,
            context,
            [
                (
                    context["pdf_file"],
                    "pdf",
                    {},
                    self._proofs.pdf(evidence),
                ),
                (context["evidence_file"], "json", {}, evidence.document),
                # RFC 8551 3.2: a SignedData is pkcs7-mime with smime-type signed-data.
                (context["seal_file"], "pkcs7-mime", {"smime-type": "signed-data"}, evidence.seal),
            ],
        )

    def email_code(
        self, message: MessageRecord, party: PartyDetails, now: dt.datetime
    ) -> Message | None:
        """A one-time code for signing in, or for enrolling the means of
        authentication after proofing; None once it has expired (a late code
        is of no use, and not sent)."""
        payload = message.payload
        expire_time = dt.datetime.fromisoformat(payload["expire_time"])
        if now >= expire_time:
            return None
        code_id = uuid.UUID(payload["code_id"])
        code = at_rest.decrypt(
            self._policy.secrets_key, bytes.fromhex(payload["code"]), code_id.bytes
        )
        context = {
            "code": code.decode(),
            "provider": self._policy.provider_name,
            "minutes": round((expire_time - message.create_time).total_seconds() / 60),
            "party": f"parties/{payload['party']}",
        }
        if payload.get("purpose") == "enrolment":
            subject, template = "Code d'enrôlement / Enrolment code", "enrolment_code"
        elif payload.get("purpose") == "unlock":
            subject, template = "Code de déblocage / Unlock code", "unlock_code"
        else:
            subject, template = "Code de connexion / Sign-in code", "email_code"
        return self._email(
            message, party.email, f"{subject} - {self._policy.provider_name}", template, context
        )

    def _email(
        self,
        message: MessageRecord,
        to: str,
        subject: str,
        template: str,
        context: dict[str, Any],
        attachments: list[tuple[str, str, dict[str, str], bytes]] | None = None,
    ) -> Message:
        """Text and HTML from the templates named ``template`` (an outbox kind's, or
        a variant such as the enrolment code's), then the attachments. Built with the
        compat32 MIME classes: the modern header objects cost several times more
        CPU, and a dispatcher builds a message per notification."""
        body = MIMEMultipart("alternative")
        for subtype in ("txt", "html"):
            rendered = self._templates.get_template(f"{template}.{subtype}.j2").render(context)
            body.attach(MIMEText(rendered, "plain" if subtype == "txt" else "html", "utf-8"))
        # Boundaries given, not searched for: the generator would otherwise scan
        # the whole encoded message for a free one at each level (~2 ms a proof
        # e-mail). "=_" appears in no base64 or quoted-printable text, and every
        # part here is one of those; the outbox id keeps a resend identical.
        body.set_boundary(f"=_{message.id.hex}_alternative")
        email: Message = body
        if attachments:
            email = MIMEMultipart("mixed")
            email.set_boundary(f"=_{message.id.hex}_mixed")
            email.attach(body)
            for filename, subtype, parameters, data in attachments:
                part = attachment(data, subtype)
                for name, value in parameters.items():
                    part.set_param(name, value)
                part.add_header("Content-Disposition", "attachment", filename=filename)
                email.attach(part)
        email["From"] = self._policy.mail_from
        email["To"] = to
        email["Subject"] = Header(subject, UTF8)  # type: ignore[assignment]  # compat32 folds it
        # Stable per outbox message: a resend after a crash is recognisably the same message.
        email["Message-ID"] = self.message_id(message.id)
        # RFC 5322 3.6.1: when the message was complete and ready to enter the
        # mail system, which is when the outbox row was written; the same on
        # every attempt, like the Message-ID.
        email["Date"] = format_datetime(message.create_time.astimezone(dt.UTC))
        email["Content-Language"] = "fr, en"
        # RFC 3834: sent by a machine; a mailbox's auto-responder does not answer it.
        email["Auto-Submitted"] = "auto-generated"
        return email

    def outbox_id(self, message_id: str) -> uuid.UUID | None:
        """The outbox row behind a Message-ID we issued; None for any other."""
        local, _, domain = message_id.strip().removeprefix("<").removesuffix(">").partition("@")
        if self.message_id(uuid.UUID(int=0)).split("@", 1)[1] != f"{domain}>":
            return None
        try:
            return uuid.UUID(local)
        except ValueError:
            return None

    def message_id(self, outbox_id: uuid.UUID) -> str:
        domain = self._policy.mail_from.rsplit("@", 1)[-1].strip(">") or "lre.invalid"
        return f"<{outbox_id}@{domain}>"

    def _notified(self, store: Store, reference: str, code: str) -> LetterRecord | None:
        """The letter whose notice carries this reference and code, if any."""
        letter = store.letters.by_reference(reference.strip().upper())
        if letter is None or letter.notification_time is None:
            return None
        # Codes e-mailed before a rotation of the secrets key still verify;
        # read as typed, in either case, with or without its dash or spaces.
        given = "".join(code.split()).replace("-", "").upper()
        # Codes are ASCII; compare_digest refuses to compare other text (a wrong code).
        genuine = given.isascii() and any(
            hmac.compare_digest(self.verification_code(letter.id, key).replace("-", ""), given)
            for key in self._policy.secrets_key.all()
        )
        return letter if genuine else None

    def verify(self, reference: str, code: str, source: Source = NO_SOURCE) -> Verification:
        """Whether a notification with this reference and code came from us.
        Unknown references and wrong codes look the same to the caller (until
        ``source`` has guessed too often: lre.server.services.notice_codes)."""
        letter = self._attempt(reference, code, source)
        if letter is None:
            return Verification(False, None)
        return Verification(True, letter.acceptance_deadline)

    def _attempt(self, reference: str, code: str, source: Source) -> LetterRecord | None:
        """The notified letter of this reference and code, the attempt counted;
        TooManyAttempts once the transaction that counts it has committed."""
        with self._stores.begin() as store:
            letter = self._notified(store, reference, code)
            named = letter or store.letters.by_reference(reference.strip().upper())
            if named is not None and named.notification_time is None:
                named = None
            refused = self._codes.attempt(store, named, letter is not None, source)
        if refused is not None:
            raise refused
        return letter

    def claim(self, reference: str, code: str, source: Source = NO_SOURCE) -> LetterClaim:
        """A recipient's way in from its notice alone. Whoever holds the code
        read the addressee's mailbox; what it gets is the letter and the
        addressee's party (pre-registered by the sender's gateway), nothing of
        the sender. Acting on the letter still takes that party's session, and
        a session takes a proofing that matches the addressee's names (its
        enrolment code mailed to the same address): the claim binds to the
        existing party only through the person proofing as it."""
        for value, field in ((reference, "letter_reference"), (code, "verification_code")):
            if not value.strip() or len(value) > 64:
                raise InvalidArgument(field, "required, at most 64 characters")
        letter = self._attempt(reference, code, source)
        if letter is None:
            raise NotFound("no notification with this reference and code")
        with self._stores.read() as store:
            enrolled = store.credentials.get(letter.recipient_id).password_hash
        return LetterClaim(
            letter.id, letter.recipient_id, letter.acceptance_deadline, enrolled is not None
        )


def read_bounce_report(raw: bytes) -> Bounce:
    """A delivery status notification (RFC 3464) as the bounce it reports;
    InvalidArgument when it is not one."""
    try:
        return parse_delivery_status(raw)
    except ValueError as exc:
        raise InvalidArgument("delivery_status_notification", str(exc)) from None


def attachment(data: bytes, subtype: str) -> MIMEBase:
    """An application/``subtype`` part in base64, lines of 76 (RFC 2045 6.8):
    the same bytes as MIMEApplication's, whose encoder makes a call per 57
    bytes after decoding the payload back (1.4 ms for a proof's PDF, 0.3
    here)."""
    part = MIMEBase("application", subtype)
    text = base64.b64encode(data).decode("ascii")
    part.set_payload("".join(text[i : i + 76] + "\n" for i in range(0, len(text), 76)))
    part["Content-Transfer-Encoding"] = "base64"
    return part
