"""A mailing's report, as CSV its sender opens in a spreadsheet: per
recipient its letter, state, refusal, and per step the time and the name of
its evidence (GetEvidence fetches it sealed)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.mailings import MailingRecipientRecord, MailingRecord
from lre.server.domain.records import LetterRecord

# The report's columns: per recipient, then per step its time and evidence.
STEPS = (
    EvidenceEvent.SUBMISSION_ACCEPTANCE,
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE,
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
    EvidenceEvent.CONTENT_HANDOVER,
    EvidenceEvent.CONSIGNMENT_REJECTION,
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
)


def report_lines(
    mailing: MailingRecord,
    recipients: list[MailingRecipientRecord],
    letters: dict[uuid.UUID, LetterRecord],
    steps: dict[uuid.UUID, list[tuple[Any, dt.datetime, uuid.UUID]]],
) -> Iterator[str]:
    """The header, then a line per recipient. ``steps``: (event, time,
    evidence id) of each letter, in order."""
    header = ["index", "recipient", "letter_reference", "letter", "state", "refusal"]
    for event in STEPS:
        header += [f"{event.value}_time", f"{event.value}_evidence"]
    yield report_line([*header, "SubmissionRejection_time", "SubmissionRejection_evidence"])
    for r in recipients:
        letter = letters.get(r.letter_id) if r.letter_id else None
        row = [
            str(r.position),
            r.recipient,
            r.letter_reference,
            f"letters/{letter.id}" if letter else "",
            letter.state.value if letter else "refused_at_deposit",
            r.reason_code or "",
        ]
        found = {
            event: (at, eid) for event, at, eid in (steps.get(letter.id, []) if letter else [])
        }
        for event in STEPS:
            at, eid = found.get(event, (None, None))
            row += [
                at.isoformat() if at else "",
                f"letters/{r.letter_id}/evidence/{eid}" if eid else "",
            ]
        row += [
            r.evidence_time.isoformat() if r.evidence_time else "",
            f"mailings/{mailing.id}/recipients/{r.position}/evidence/{r.evidence_id}"
            if r.evidence_id
            else "",
        ]
        yield report_line(row)


def report_line(fields: list[str]) -> str:
    """RFC 4180; a cell starting with a formula character is prefixed with a
    quote, so that a spreadsheet opening the report runs nothing."""
    cells = []
    for cell in fields:
        if cell[:1] in ("=", "+", "-", "@"):
            cell = "'" + cell
        cells.append(
            '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\r\n') else cell
        )
    return ",".join(cells) + "\r\n"
