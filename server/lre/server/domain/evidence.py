"""Evidence documents (ETSI EN 319 522-2 evidence; CPCE R53-2 items 1-5).

The document is what the signer seals: canonical JSON, so that the same
evidence always has the same bytes and anyone can read it without our code.
Each field and its EN 319 522-2 counterpart: docs/evidence.md, section
"Evidence fields (lre-evidence/2)".

Time: the qualified timestamp in the seal (its genTime) is the authoritative
time of an evidence; ``eventTime`` is the provider's record of the event,
which the recorder checks against genTime after sealing (``check_times``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from cryptography import x509

from lre.server.domain.errors import DependencyUnavailable, InvalidArgument
from lre.server.domain.identity import AssuranceLevel, Session
from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.personal_names import name_problem

FORMAT = "lre-evidence/2"
# XML-Enc's SHA-256 identifier; under it digest values are base64 (XML-DSig convention).
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
# eIDAS levels of assurance (Commission Implementing Regulation (EU) 2015/1502).
LOA_URIS = {
    AssuranceLevel.LOW: "http://eidas.europa.eu/LoA/low",
    AssuranceLevel.SUBSTANTIAL: "http://eidas.europa.eu/LoA/substantial",
    AssuranceLevel.HIGH: "http://eidas.europa.eu/LoA/high",
}


# The evidence a recipient may read: the events about them, once they accepted.
# Every evidence names the sender, and a recipient learns who the sender is only
# by accepting (R53-3 I): before that, and after a refusal, they read none.
RECIPIENT_EVENTS = frozenset(
    {
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        EvidenceEvent.CONTENT_HANDOVER,
    }
)


def readable_by_recipient(event: EvidenceEvent, sender_visible: bool) -> bool:
    return sender_visible and event in RECIPIENT_EVENTS


class EvidenceTimeMismatch(DependencyUnavailable):
    """The sealed timestamp and the evidence's event time disagree: a clock is
    wrong, and nothing is recorded until it is right again (UNAVAILABLE)."""


@dataclass(frozen=True)
class Delegate:
    """The natural person who acted for a party (EN 319 522-2 sender or
    recipient delegate details): a company's representative or someone it
    mandated, as the party's authenticated session stated it."""

    given_name: str
    family_name: str
    role: str = ""

    @classmethod
    def stated(cls, given_name: str, family_name: str, role: str, field: str) -> Delegate:
        """A delegate as a request names it: InvalidArgument, naming ``field``,
        unless both names are there and every value is within bounds."""
        if not given_name.strip() or not family_name.strip():
            raise InvalidArgument(field, "a delegate needs given and family names")
        problem = name_problem(given_name) or name_problem(family_name)
        if problem is not None:
            raise InvalidArgument(field, f"a delegate's names {problem}")
        if max(len(given_name), len(family_name)) > 200 or len(role) > 100:
            raise InvalidArgument(field, "names at most 200 characters, the role at most 100")
        return cls(given_name.strip(), family_name.strip(), role.strip())

    def to_dict(self) -> dict[str, str]:
        found = {"givenName": self.given_name, "familyName": self.family_name}
        if self.role:
            found["role"] = self.role
        return found


@dataclass(frozen=True)
class PartyDetails:
    """R53-2 items 1 and 2: name or company name, and e-mail address; the
    party's id; a legal person's registration identifier (2.5.4.97 form) and,
    on the proof of deposit, who acted for the sender."""

    name: str
    email: str
    party_id: str
    registration_id: str | None = None
    delegate: Delegate | None = None
    # The party's latest name correction ("parties/{id}/corrections/{id}")
    # and when: a proof made after it mentions it.
    correction: tuple[str, dt.datetime] | None = None


@dataclass(frozen=True)
class Authentication:
    """How a party authenticated for the session the event happened in
    (EN 319 522-2 AuthenticationDetails)."""

    # The factor categories used, and "otp" when a one-time element was part of it.
    method: tuple[str, ...]
    level: AssuranceLevel
    time: dt.datetime

    @classmethod
    def of(cls, session: Session) -> Authentication:
        factors = sorted(f.value for f in session.factors)
        return cls(
            method=(*factors, *(["otp"] if session.one_time_element else [])),
            level=session.level,
            time=session.authenticated_at,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "method": list(self.method),
            "level": LOA_URIS[self.level],
            "time": _utc(self.time),
        }


@dataclass(frozen=True)
class IssuerDetails:
    """The provider and the certificate of its seal (EN 319 522-2 EvidenceIssuerDetails)."""

    name: str
    certificate_sha256: bytes
    certificate_issuer: str  # RFC 4514
    certificate_serial: int

    @classmethod
    def of(cls, name: str, certificate_der: bytes) -> IssuerDetails:
        certificate = x509.load_der_x509_certificate(certificate_der)
        return cls(
            name=name,
            certificate_sha256=hashlib.sha256(certificate_der).digest(),
            certificate_issuer=certificate.issuer.rfc4514_string(),
            certificate_serial=certificate.serial_number,
        )


@dataclass(frozen=True)
class PartDigest:
    filename: str
    media_type: str
    size_bytes: int
    sha256: str  # hex, as stored; the document carries it in base64


@dataclass(frozen=True)
class EvidenceDocument:
    evidence_id: str
    event: EvidenceEvent
    event_time: dt.datetime
    policy_oid: str
    issuer: IssuerDetails
    sender: PartyDetails
    recipient: PartyDetails
    letter_id: str
    submission_time: dt.datetime
    parts: tuple[PartDigest, ...]
    sender_authentication: Authentication | None = None
    recipient_authentication: Authentication | None = None
    # A stable code for refusals, rejections and failures (e.g. "consent_missing"),
    # and the text beside it when there is one (a recipient's stated reason).
    reason_code: str | None = None
    reason: str | None = None
    # The reference every e-mail about the letter carries, so that a clerk
    # matches a proof to its e-mails; and, once the recipient was notified,
    # when (what the acceptance window is counted from, CPCE R53-3 I).
    letter_reference: str | None = None
    notification_time: dt.datetime | None = None

    def to_json(self) -> bytes:
        document: dict[str, object] = {
            "format": FORMAT,
            "evidenceId": self.evidence_id,
            "event": self.event.uri,
            "eventTime": _utc(self.event_time),
            "policyId": self.policy_oid,
            "issuer": {
                "name": self.issuer.name,
                "certificate": {
                    "digestMethod": SHA256_URI,
                    "digestValue": base64.b64encode(self.issuer.certificate_sha256).decode(),
                    "issuer": self.issuer.certificate_issuer,
                    "serialNumber": str(self.issuer.certificate_serial),
                },
            },
            "sender": _party(self.sender, self.sender_authentication),
            "recipient": _party(self.recipient, self.recipient_authentication),
            "letterId": self.letter_id,
            "submissionTime": _utc(self.submission_time),
            "contentDigests": [
                {
                    "filename": p.filename,
                    "mediaType": p.media_type,
                    "size": p.size_bytes,
                    "digestMethod": SHA256_URI,
                    "digestValue": base64.b64encode(bytes.fromhex(p.sha256)).decode(),
                }
                for p in self.parts
            ],
        }
        if self.reason_code is not None:
            document["reasonCode"] = self.reason_code
        if self.reason is not None:
            document["reason"] = self.reason
        if self.letter_reference is not None:
            document["letterReference"] = self.letter_reference
        if self.notification_time is not None:
            document["notificationTime"] = _utc(self.notification_time)
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()


def check_times(
    event_time: dt.datetime,
    gen_time: dt.datetime,
    accuracy: dt.timedelta,
    max_lag: dt.timedelta | None,
    skew: dt.timedelta = dt.timedelta(0),
) -> None:
    """The qualified timestamp of the seal (``gen_time``, within ``accuracy``)
    is the authoritative time; the event's recorded time must agree with it.

    The seal is asked for after the event is recorded, so genTime may not
    precede ``event_time`` by more than the accuracy, and may follow it by at
    most ``max_lag`` (the sealing deadline) plus the accuracy. ``max_lag`` is
    None for an event dated in the past by the law (a non-claim is dated at the
    end of the window, and sealed when the sweep finds it). ``skew`` widens
    both bounds: zero in production, where the server's clock is synchronised
    with the TSA's; tests that move their own clock days ahead of the real
    TSA set it wide. Raises
    EvidenceTimeMismatch: then a clock is wrong and nothing may be recorded."""
    if gen_time + accuracy + skew < event_time:
        raise EvidenceTimeMismatch(
            f"timestamp {_utc(gen_time)} precedes event time {_utc(event_time)}"
            f" by more than the TSA accuracy ({accuracy.total_seconds()} s)"
        )
    if max_lag is not None and gen_time - accuracy - skew > event_time + max_lag:
        raise EvidenceTimeMismatch(
            f"timestamp {_utc(gen_time)} follows event time {_utc(event_time)}"
            f" by more than {max_lag.total_seconds()} s and the TSA accuracy"
        )


def _party(party: PartyDetails, authentication: Authentication | None) -> dict[str, object]:
    details: dict[str, object] = {
        "id": f"parties/{party.party_id}",
        "name": party.name,
        "email": party.email,
    }
    if party.registration_id is not None:
        details["registrationId"] = party.registration_id
    if party.delegate is not None:
        details["delegate"] = party.delegate.to_dict()
    if party.correction is not None:
        details["nameCorrection"] = {
            "correction": party.correction[0],
            "time": _utc(party.correction[1]),
        }
    if authentication is not None:
        details["authentication"] = authentication.to_dict()
    return details


def _utc(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("evidence times must be timezone-aware")
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
