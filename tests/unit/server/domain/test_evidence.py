"""Evidence documents: every R53-2 item, canonical bytes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lre.server.domain.evidence import (
    EvidenceDocument,
    PartDigest,
    PartyDetails,
    RecipientAuthentication,
)
from lre.server.domain.identity import AssuranceLevel, FactorCategory, Session
from lre.server.domain.letters import EvidenceEvent

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))


def document(**changes: object) -> EvidenceDocument:
    fields: dict[str, object] = {
        "evidence_id": "ev-1",
        "event": EvidenceEvent.SUBMISSION_ACCEPTANCE,
        "event_time": dt.datetime(2026, 5, 4, 12, 0, 0, 123456, tzinfo=PARIS_SUMMER),
        "issuer": "Provider SAS",
        "sender": PartyDetails("Bailleur SARL", "gestion@bailleur.example"),
        "recipient": PartyDetails("Camille Dupont", "camille@example.org"),
        "letter_id": "letters/0b5f",
        "submission_time": dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC),
        "parts": (PartDigest("résiliation.pdf", "application/pdf", 1234, "ab" * 32),),
    }
    fields.update(changes)
    return EvidenceDocument(**fields)  # type: ignore[arg-type]


def test_document_carries_every_item_of_r53_2_and_the_etsi_event() -> None:
    parsed = json.loads(document().to_json())
    assert parsed["event"] == "http://uri.etsi.org/19522/Event/SubmissionAcceptance"
    assert parsed["sender"] == {"name": "Bailleur SARL", "email": "gestion@bailleur.example"}
    assert parsed["recipient"] == {"name": "Camille Dupont", "email": "camille@example.org"}
    assert parsed["letterId"] == "letters/0b5f"
    assert parsed["eventTime"] == "2026-05-04T10:00:00.123456Z"  # converted to UTC
    assert parsed["submissionTime"] == "2026-05-04T10:00:00.000000Z"
    assert parsed["contentDigests"][0]["digestValue"] == "ab" * 32
    assert parsed["contentDigests"][0]["filename"] == "résiliation.pdf"
    assert "reason" not in parsed
    assert (
        json.loads(document(reason="refused by recipient").to_json())["reason"]
        == "refused by recipient"
    )


def test_bytes_are_canonical() -> None:
    raw = document().to_json()
    assert raw == document().to_json()
    assert (
        raw
        == json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        document(event_time=dt.datetime(2026, 5, 4, 12, 0)).to_json()


def test_a_recipients_decision_says_how_it_was_authenticated() -> None:
    assert "recipientAuthentication" not in json.loads(document().to_json())
    session = Session(
        party_id="p",
        level=AssuranceLevel.HIGH,
        factors=frozenset({FactorCategory.POSSESSION, FactorCategory.KNOWLEDGE}),
        one_time_element=True,
        authenticated_at=dt.datetime(2026, 5, 4, 11, 58, tzinfo=PARIS_SUMMER),
        expires_at=dt.datetime(2026, 5, 4, 12, 28, tzinfo=PARIS_SUMMER),
    )
    decided = document(
        event=EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        recipient_authentication=RecipientAuthentication.of(session),
    )
    assert json.loads(decided.to_json())["recipientAuthentication"] == {
        "method": "knowledge+possession+one_time_code",
        "level": "high",
        "authenticatedAt": "2026-05-04T09:58:00.000000Z",
    }
