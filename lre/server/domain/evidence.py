"""Evidence documents (ETSI EN 319 522-2 events; CPCE R53-2 items 1-5).

The document is what the signer seals: canonical JSON, so that the same
evidence always has the same bytes and anyone can read it without our code.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from lre.server.domain.identity import Session
from lre.server.domain.letters import EvidenceEvent

FORMAT = "lre-evidence/1"


@dataclass(frozen=True)
class PartyDetails:
    """R53-2 items 1 and 2: name or company name, and e-mail address."""

    name: str
    email: str


@dataclass(frozen=True)
class PartDigest:
    filename: str
    media_type: str
    size_bytes: int
    sha256: str  # hex


@dataclass(frozen=True)
class RecipientAuthentication:
    """How the recipient who accepted, refused or took the content was
    identified and authenticated (EN 319 522-2 RecipientAuthenticationDetails):
    the factors of the session, the level its identity was proofed at, when
    the recipient authenticated."""

    method: str
    level: str
    authenticated_at: dt.datetime

    @classmethod
    def of(cls, session: Session) -> RecipientAuthentication:
        factors = sorted(f.value for f in session.factors)
        if session.one_time_element:
            factors.append("one_time_code")
        return cls("+".join(factors), session.level.name.lower(), session.authenticated_at)


@dataclass(frozen=True)
class EvidenceDocument:
    evidence_id: str
    event: EvidenceEvent
    event_time: dt.datetime
    issuer: str
    sender: PartyDetails
    recipient: PartyDetails
    letter_id: str
    submission_time: dt.datetime
    parts: tuple[PartDigest, ...]
    reason: str | None = None
    # A stable code beside the text of a refusal (e.g. "consent_missing").
    reason_code: str | None = None
    # Acceptance, refusal and handover: the recipient's session.
    recipient_authentication: RecipientAuthentication | None = None

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "evidenceId": self.evidence_id,
            "event": self.event.uri,
            "eventTime": _utc(self.event_time),
            "issuer": self.issuer,
            "sender": {"name": self.sender.name, "email": self.sender.email},
            "recipient": {"name": self.recipient.name, "email": self.recipient.email},
            "letterId": self.letter_id,
            "submissionTime": _utc(self.submission_time),
            "contentDigests": [
                {
                    "filename": p.filename,
                    "mediaType": p.media_type,
                    "size": p.size_bytes,
                    "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
                    "digestValue": p.sha256,
                }
                for p in self.parts
            ],
        }
        if self.reason is not None:
            document["reason"] = self.reason
        if self.reason_code is not None:
            document["reasonCode"] = self.reason_code
        if self.recipient_authentication is not None:
            auth = self.recipient_authentication
            document["recipientAuthentication"] = {
                "method": auth.method,
                "level": auth.level,
                "authenticatedAt": _utc(auth.authenticated_at),
            }
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()


def _utc(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("evidence times must be timezone-aware")
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
