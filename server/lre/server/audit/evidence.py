"""verify-log, pass 2, a letter's evidence: every evidence row must be the
one its leaf names (same letter, event, time, document and seal digests), its
document must name this letter, its parties (but for a party whose personal
data was erased) and content, and its seal must cover exactly that document."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from sqlalchemy import Row

from lre.server.audit.reading import Report, json_object
from lre.server.audit.seals import SealChecker
from lre.server.domain import log
from lre.server.domain.evidence import _utc
from lre.server.domain.letters import EvidenceEvent, PartyKind
from lre.server.domain.proofing import same_full_name, same_name


class EvidenceCheck:
    """The evidence of one letter: its ``letters`` row (with its parties) and its parts."""

    def __init__(
        self,
        report: Report,
        seals: SealChecker | None,
        letter_id: Any,
        row: Row[Any] | None,
        parts: list[Row[Any]],
        history: dict[Any, list[dict[str, Any]]] | None = None,
    ) -> None:
        """``history``: per party id, the names it had before each correction."""
        self.report = report
        self.seals = seals
        self.id = letter_id
        self.row = row
        self.parts = parts
        self.history = history or {}

    def add(self, where: str, what: str) -> None:
        self.report.add(f"{where}: {what}")

    def check(
        self,
        where: str,
        record: log.LogRecord,
        entry: Row[Any],
        deposit_time: dt.datetime | None,
    ) -> None:
        """``entry``: the log entry joined with its evidence row (``v_*``);
        ``deposit_time``: the letter's, as replayed up to this entry."""
        name = f"evidence {entry.evidence_id or record.evidence_id} ({where})"
        if entry.v_id is None:
            self.add(name, "is missing (deleted)")
            return
        self.report.evidence += 1
        if entry.v_letter_id != self.id:
            self.add(name, f"belongs to letter {entry.v_letter_id}, its entry to {self.id} (moved)")
        if (
            record.document_sha256 != log.sha256_hex(entry.v_document)
            or record.seal_sha256 != log.sha256_hex(entry.v_seal)
            or entry.v_event is not record.event
            or entry.v_event_time != record.event_time
        ):
            self.add(name, "was changed")
        document = json_object(entry.v_document)
        if document is None:
            self.add(name, "its document is not a JSON object")
        else:
            self._document(name, document, record, deposit_time)
        if self.seals is not None:
            why = self.seals.problem(entry.v_seal, entry.v_document)
            if why:
                self.add(name, f"its seal {why}")

    def _document(
        self,
        name: str,
        document: dict[str, Any],
        record: log.LogRecord,
        deposit_time: dt.datetime | None,
    ) -> None:
        """The sealed document names this letter, this event, its parties and content."""
        row = self.row
        expected: dict[str, Any] = {
            "evidenceId": str(self._evidence_uuid(record)),
            "letterId": f"letters/{self.id}",
            "event": record.event.uri if record.event else None,
            "eventTime": _utc(record.event_time),
        }
        if deposit_time is not None:
            expected["submissionTime"] = _utc(deposit_time)
        v2 = document.get("format") == "lre-evidence/2"
        if row is not None:
            expected["sender"] = {
                "name": _party_name(row.s_kind, row.s_given, row.s_family, row.s_company),
                "email": row.s_email,
            }
            expected["recipient"] = {
                "name": _party_name(row.r_kind, row.r_given, row.r_family, row.r_company),
                "email": row.r_email,
            }
            if v2:  # the parties' names, and how they authenticated (not in any row)
                expected["sender"]["id"] = f"parties/{row.sender_id}"
                expected["recipient"]["id"] = f"parties/{row.recipient_id}"
                for side, registered in (
                    ("sender", row.s_registration),
                    ("recipient", row.r_registration),
                ):
                    if registered is not None:
                        expected[side]["registrationId"] = registered
                    found = document.get(side)
                    # Who authenticated, who acted for the party and the
                    # correction it mentions are in no row of the letter's.
                    for stated in ("authentication", "delegate", "nameCorrection"):
                        if isinstance(found, dict) and stated in found:
                            found = _without(found, stated)
                            document = {**document, side: found}
        if record.event is not EvidenceEvent.SUBMISSION_REJECTION:
            expected["contentDigests"] = [
                {
                    "filename": p.filename,
                    "mediaType": p.media_type,
                    "size": p.size_bytes,
                    "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
                    "digestValue": _digest_value(p.sha256, v2),
                }
                for p in self.parts
            ]
        if row is not None:
            # Evidence names the proofed spelling; the row, the registered one:
            # the domain's one rule says whether they are the same name.
            # The party's names now, or those it had before a correction.
            for side, party, kind, given, family, company in (
                ("sender", row.sender_id, row.s_kind, row.s_given, row.s_family, row.s_company),
                (
                    "recipient",
                    row.recipient_id,
                    row.r_kind,
                    row.r_given,
                    row.r_family,
                    row.r_company,
                ),
            ):
                found = document.get(side)
                written = found.get("name") if isinstance(found, dict) else None
                names = [(given, family, company)] + [
                    (b.get("givenName"), b.get("familyName"), b.get("companyName"))
                    for b in self.history.get(party, [])
                ]
                if isinstance(written, str) and any(
                    same_name(written, c)
                    if kind is PartyKind.LEGAL_PERSON
                    else same_full_name(written, g, f)
                    for g, f, c in names
                ):
                    expected[side] = {**expected[side], "name": written}
        if row is not None:
            # An erased party's row no longer holds what its sealed evidence
            # states: the evidence stands on its digests in the log and its
            # seal; the journal pass holds the erasure to its entry.
            for side, erased in (("sender", row.s_erased), ("recipient", row.r_erased)):
                if erased is not None and side in document:
                    expected[side] = document[side]
        wrong = sorted(k for k, v in expected.items() if document.get(k) != v)
        if wrong:
            self.add(name, f"its document does not match the letter ({', '.join(wrong)})")

    @staticmethod
    def _evidence_uuid(record: log.LogRecord) -> str:
        return (record.evidence_id or "").rsplit("/", 1)[-1]


def _party_name(kind: Any, given: Any, family: Any, company: Any) -> str:
    """As the service names a party in evidence (R53-2 items 1-2)."""
    if kind is PartyKind.LEGAL_PERSON:
        return company or ""
    return f"{given} {family}"


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _digest_value(sha256: object, v2: bool) -> str | None:
    """A part's SHA-256 as the evidence writes it: hex in lre-evidence/1,
    base64 (the XML-Enc convention) in lre-evidence/2."""
    if not isinstance(sha256, bytes):
        return None
    return base64.b64encode(sha256).decode() if v2 else sha256.hex()
