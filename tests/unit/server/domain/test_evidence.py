"""Evidence documents (lre-evidence/2): every R53-2 item, the EN 319 522-2
details, canonical bytes, and the time agreement with the seal's timestamp."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from lre.server.domain.evidence import (
    Authentication,
    EvidenceDocument,
    EvidenceTimeMismatch,
    IssuerDetails,
    PartDigest,
    PartyDetails,
    check_times,
)
from lre.server.domain.identity import AssuranceLevel, FactorCategory, Session
from lre.server.domain.letters import EvidenceEvent

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))
CERTIFICATE = b"certificate DER"
SENDER_ID = "0b5f0000-0000-4000-8000-000000000001"
RECIPIENT_ID = "0b5f0000-0000-4000-8000-000000000002"
SESSION = Session(
    party_id=SENDER_ID,
    level=AssuranceLevel.SUBSTANTIAL,
    factors=frozenset({FactorCategory.POSSESSION, FactorCategory.KNOWLEDGE}),
    one_time_element=True,
    authenticated_at=dt.datetime(2026, 5, 4, 9, 55, tzinfo=dt.UTC),
    expires_at=dt.datetime(2026, 5, 4, 11, 55, tzinfo=dt.UTC),
)


def document(**changes: object) -> EvidenceDocument:
    fields: dict[str, object] = {
        "evidence_id": "ev-1",
        "event": EvidenceEvent.SUBMISSION_ACCEPTANCE,
        "event_time": dt.datetime(2026, 5, 4, 12, 0, 0, 123456, tzinfo=PARIS_SUMMER),
        "policy_oid": "2.999.319522.1",
        "issuer": IssuerDetails(
            "Provider SAS", hashlib.sha256(CERTIFICATE).digest(), "CN=Dev CA,O=LRE", 4660
        ),
        "sender": PartyDetails("Bailleur SARL", "gestion@bailleur.example", SENDER_ID),
        "recipient": PartyDetails("Camille Dupont", "camille@example.org", RECIPIENT_ID),
        "letter_id": "letters/0b5f",
        "submission_time": dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC),
        "parts": (PartDigest("résiliation.pdf", "application/pdf", 1234, "ab" * 32),),
    }
    fields.update(changes)
    return EvidenceDocument(**fields)  # type: ignore[arg-type]


def test_document_carries_every_item_of_r53_2_and_the_etsi_details() -> None:
    parsed = json.loads(document().to_json())
    assert parsed["format"] == "lre-evidence/2"
    assert parsed["event"] == "http://uri.etsi.org/19522/Event/SubmissionAcceptance"
    assert parsed["policyId"] == "2.999.319522.1"
    assert parsed["sender"] == {
        "id": f"parties/{SENDER_ID}",
        "name": "Bailleur SARL",
        "email": "gestion@bailleur.example",
    }
    assert parsed["recipient"]["id"] == f"parties/{RECIPIENT_ID}"
    assert parsed["letterId"] == "letters/0b5f"
    assert parsed["eventTime"] == "2026-05-04T10:00:00.123456Z"  # converted to UTC
    assert parsed["submissionTime"] == "2026-05-04T10:00:00.000000Z"
    assert parsed["contentDigests"][0]["filename"] == "résiliation.pdf"
    assert "reason" not in parsed
    assert "reasonCode" not in parsed


def test_issuer_names_its_seal_certificate() -> None:
    issuer = json.loads(document().to_json())["issuer"]
    assert issuer == {
        "name": "Provider SAS",
        "certificate": {
            "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
            "digestValue": base64.b64encode(hashlib.sha256(CERTIFICATE).digest()).decode(),
            "issuer": "CN=Dev CA,O=LRE",
            # A string: serial numbers exceed what JSON numbers carry exactly.
            "serialNumber": "4660",
        },
    }


def test_digest_values_are_base64_under_the_xmlenc_uri() -> None:
    (digest,) = json.loads(document().to_json())["contentDigests"]
    assert digest["digestMethod"] == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert digest["digestValue"] == base64.b64encode(bytes.fromhex("ab" * 32)).decode()
    assert base64.b64decode(digest["digestValue"], validate=True) == bytes.fromhex("ab" * 32)


def test_authentication_details_where_known() -> None:
    parsed = json.loads(document(sender_authentication=Authentication.of(SESSION)).to_json())
    assert parsed["sender"]["authentication"] == {
        "method": ["knowledge", "possession", "otp"],
        "level": "http://eidas.europa.eu/LoA/substantial",
        "time": "2026-05-04T09:55:00.000000Z",
    }
    assert "authentication" not in parsed["recipient"]


def test_coded_reason_with_or_without_text() -> None:
    coded = json.loads(
        document(
            event=EvidenceEvent.CONSIGNMENT_REJECTION, reason_code="refused_by_recipient"
        ).to_json()
    )
    assert coded["reasonCode"] == "refused_by_recipient"
    assert "reason" not in coded
    both = json.loads(document(reason_code="consent_missing", reason="no consent").to_json())
    assert (both["reasonCode"], both["reason"]) == ("consent_missing", "no consent")


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


EVENT = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
LAG = dt.timedelta(seconds=30)


@pytest.mark.parametrize(
    "gen_time",
    [EVENT, EVENT - SECOND, EVENT + LAG + SECOND, EVENT + dt.timedelta(milliseconds=5)],
)
def test_times_within_the_accuracy_agree(gen_time: dt.datetime) -> None:
    check_times(EVENT, gen_time, SECOND, LAG)


@pytest.mark.parametrize(
    "gen_time",
    [EVENT - SECOND - dt.timedelta(microseconds=1), EVENT + LAG + 2 * SECOND],
)
def test_times_beyond_the_accuracy_are_refused(gen_time: dt.datetime) -> None:
    with pytest.raises(EvidenceTimeMismatch):
        check_times(EVENT, gen_time, SECOND, LAG)


def test_an_event_dated_by_the_law_may_be_sealed_later_never_earlier() -> None:
    check_times(EVENT, EVENT + dt.timedelta(days=3), SECOND, None)
    with pytest.raises(EvidenceTimeMismatch):
        check_times(EVENT, EVENT - 2 * SECOND, SECOND, None)
