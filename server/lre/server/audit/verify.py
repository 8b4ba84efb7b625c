"""`lre-server verify-log`: what an auditor with a copy of the database (and,
ideally, the tree heads published outside it) can prove without trusting the
service's code.

Streaming passes over one read-only snapshot, each O(n) time and bounded
memory (no pass holds more than one letter, or O(log n) hashes):

1. The log in index order: indices contiguous; every leaf hashed into an RFC
   9162 compact range (``log.MerkleRange``), whose root at each sealed head's
   size must be that head's root. Since every head is recomputed from the
   same leaves, each one is consistent with the one before. Heads are
   numbered without gaps, name their predecessor, and their seals verify;
   with ``against``, every head published outside the database is still in
   it and still matches the log (a truncated tail or a rolled-back database
   does not).
2. Letter by letter: the letter's entries are replayed through the domain's
   state machine (``domain.letters.Letter``), so an impossible or late
   transition is named; every entry row must say what its leaf says, every
   evidence row must be the one its leaf names (same letter, event, time,
   document and seal digests), its document must name this letter, its
   parties and content, and its seal must cover exactly that document. The
   ``letters`` row must end where the replay ends: state, deposit,
   notification, decision, deadline, legal hold.
3. The journal (``lre.server.audit.journal``): every sealed leaf against the
   leaf hash stored with its head, every journal leaf against its kind's
   fields, every journaled proofing against its identity record.

Every defect is a finding with what it is and where; nothing in the data makes
it raise."""

from __future__ import annotations

import base64
import datetime as dt
import heapq
import itertools
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import aliased

from lre.server.audit import journal
from lre.server.audit.seals import Provider, SealChecker
from lre.server.domain import log
from lre.server.domain.errors import DomainError
from lre.server.domain.evidence import _utc
from lre.server.domain.letters import EvidenceEvent, Letter, LetterState, PartyKind
from lre.server.domain.proofing import same_full_name, same_name
from lre.server.storage import models

BATCH = 5_000
# Missing entries hashed as placeholders to go on checking the heads above them.
MAX_GAP = 1_000_000
# A report keeps this many findings in memory; it counts them all.
KEPT = 10_000

E = models.LogEntry.__table__
V = models.Evidence.__table__
L = models.Letter.__table__
P = models.LetterPart.__table__
H = models.TreeHead.__table__


@dataclass
class Report:
    entries: int = 0
    unsequenced: int = 0
    letters: int = 0
    evidence: int = 0
    heads: int = 0
    published: int = 0
    journal: int = 0
    defects: int = 0
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.defects == 0

    def add(self, finding: str) -> None:
        self.defects += 1
        if len(self.findings) < KEPT:
            self.findings.append(finding)


def verify_log(
    database_url: str,
    anchors: Path | None,
    against: Path | None = None,
    provider: Path | None = None,
) -> Report:
    report = Report()
    declared = Provider(provider) if provider is not None else None
    seals = SealChecker(anchors, declared) if anchors is not None else None
    if seals is None:
        report.notes.append("seals not verified: set seal_trust_anchors_file")
    elif declared is None:
        report.notes.append(
            "seals not checked against the provider's own certificates: set "
            "provider_certificates_file (the root certifies others too)"
        )
    if against is None:
        report.notes.append(
            "no --against: a deleted latest head or a rolled-back tail would not show"
        )
    published: list[log.PublishedHead] = []
    if against is not None:
        published = _published(against, report)
    engine = _read_only_engine(database_url)
    try:
        with _snapshot(engine) as connection:
            passes = (("log", _pass_log), ("letters", _pass_letters), ("journal", journal.check))
            for name, check in passes:
                try:
                    check(connection, report, seals, published)
                except (ValueError, TypeError, LookupError, StatementError) as exc:
                    # A value the database hands back that its column type cannot
                    # read (SQLite stores anything): named, and the pass stops.
                    report.add(f"the {name} pass stopped at an unreadable row ({_short(exc)})")
    finally:
        engine.dispose()
    return report


# -- reading ------------------------------------------------------------------------


def _read_only_engine(url: str) -> Engine:
    """Its own engine: the service's takes SQLite's write lock on every read."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            connection.isolation_level = None  # we BEGIN ourselves (one snapshot)
            return connection

        return create_engine("sqlite://", creator=connect)
    return create_engine(url, pool_size=1, max_overflow=0)


class _snapshot:
    """One read-only transaction, so both passes see the same database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        if self._engine.dialect.name == "postgresql":
            self._connection = self._engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            self._connection = self._engine.connect()
            self._connection.exec_driver_sql("BEGIN")
        return self._connection

    def __exit__(self, *_: object) -> None:
        if self._engine.dialect.name != "postgresql":
            self._connection.exec_driver_sql("ROLLBACK")
        self._connection.close()


def _stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    result = connection.execution_options(yield_per=BATCH).execute(query)
    yield from result


def _published(path: Path, report: Report) -> list[log.PublishedHead]:
    """The heads published outside the database (a file, or the export directory)."""
    if path.is_dir():
        path = path / "tree-heads.jsonl"
    heads = []
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    heads.append(log.PublishedHead.parse(line))
                except (ValueError, KeyError, TypeError):
                    report.add(f"published head file, line {number}: malformed or rewritten")
    except OSError as exc:
        report.add(f"published heads {path}: cannot be read ({exc.strerror})")
    report.published = len(heads)
    return sorted(heads, key=lambda h: h.tree_size)


# -- pass 1: the log and its heads ------------------------------------------------------


def _pass_log(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    published: list[log.PublishedHead],
) -> None:
    heads = _stream(
        connection,
        select(H.c.number, H.c.tree_size, H.c.root_hash, H.c.document, H.c.seal).order_by(
            H.c.tree_size
        ),
    )
    tree = log.MerkleRange()
    state = _HeadChain(report, seals, published)
    head = next(heads, None)
    leaves = _stream(
        connection,
        select(E.c.seq, E.c.leaf).where(E.c.seq.is_not(None)).order_by(E.c.seq),
    )
    for row in leaves:
        seq, leaf = row.seq, row.leaf
        while head is not None and head.tree_size <= tree.size:
            state.check(head, tree)
            head = next(heads, None)
        state.published_up_to(tree)
        if seq != tree.size:
            if seq < tree.size:  # cannot happen with a unique index, unless it was dropped
                report.add(f"entry {seq}: its index is used twice")
                continue
            missing = f"{tree.size}" if seq == tree.size + 1 else f"{tree.size} to {seq - 1}"
            report.add(f"entry {missing} is missing (deleted)")
            if seq - tree.size > MAX_GAP:  # an index rewritten far ahead: stop there
                break
            # Keep hashing what is there: every head above the gap is then named too.
            while tree.size < seq:
                tree.append(b"\0" * 32)
        tree.append(log.leaf_hash(leaf if isinstance(leaf, bytes) else b""))
    report.entries = tree.size
    while head is not None:
        state.check(head, tree)
        head = next(heads, None)
    state.published_up_to(tree, final=True)
    state.finish(tree)
    tail = tree.size - state.last_size
    if tail > 0:
        report.notes.append(
            f"{tail} entries after the last sealed head: only the database vouches for them "
            "until the next head (tree_head_interval_s)"
        )


class _HeadChain:
    def __init__(
        self, report: Report, seals: SealChecker | None, published: list[log.PublishedHead]
    ) -> None:
        self._report = report
        self._seals = seals
        self._published = published
        self._next_published = 0
        # Published heads by number, to find the database's head of that number.
        self._by_number = {h.number: h for h in published}
        self._seen_numbers: set[int] = set()
        self._previous: tuple[int, int, bytes] | None = None  # number, size, root

    @property
    def last_size(self) -> int:
        return self._previous[1] if self._previous else 0

    def check(self, head: Row[Any], tree: log.MerkleRange) -> None:
        report = self._report
        report.heads += 1
        name = f"tree head {head.number} (size {head.tree_size})"
        if head.tree_size > tree.size:
            report.add(f"{name}: the log is shorter (entries deleted)")
        elif tree.root() != head.root_hash:
            report.add(
                f"{name}: the log no longer hashes to its root (an entry below "
                f"{head.tree_size} was changed, deleted or reordered)"
            )
        expected = 1 if self._previous is None else self._previous[0] + 1
        if head.number > expected:
            gap = (
                f"{expected}" if head.number == expected + 1 else f"{expected} to {head.number - 1}"
            )
            report.add(f"tree head {gap} is missing (deleted)")
        elif head.number < expected:
            report.add(f"{name}: numbered out of order (after head {expected - 1})")
        self._document(head, name)
        if self._seals is not None:
            why = self._seals.problem(head.seal, head.document)
            if why:
                report.add(f"{name}: its seal {why}")
        published = self._by_number.get(head.number)
        if published is not None and (
            published.tree_size != head.tree_size or published.root_hash != head.root_hash
        ):
            report.add(f"{name}: differs from the published head {head.number} (rewritten)")
        self._seen_numbers.add(head.number)
        self._previous = (head.number, head.tree_size, head.root_hash)

    def _document(self, head: Row[Any], name: str) -> None:
        document = _json_object(head.document)
        if document is None:
            self._report.add(f"{name}: its document is not a JSON object (changed)")
            return
        fields = {"treeSize": head.tree_size, "rootHash": head.root_hash.hex()}
        if document.get("format") == "lre-tree-head/2":
            fields["number"] = head.number
            if self._previous is not None:
                fields["previousTreeSize"] = self._previous[1]
                fields["previousRootHash"] = self._previous[2].hex()
        elif document.get("format") != "lre-tree-head/1":
            self._report.add(f"{name}: its document has an unknown format (changed)")
            return
        wrong = sorted(k for k, v in fields.items() if document.get(k) != v)
        if wrong:
            self._report.add(
                f"{name}: its document does not match ({', '.join(wrong)}): "
                "a head before it was deleted, or it was changed"
            )

    def published_up_to(self, tree: log.MerkleRange, final: bool = False) -> None:
        """Published heads of the current size match the log; at the end, the
        ones beyond it name a truncated log."""
        while self._next_published < len(self._published):
            head = self._published[self._next_published]
            if head.tree_size > tree.size and not final:
                return
            self._next_published += 1
            name = f"published tree head {head.number} (size {head.tree_size})"
            if head.tree_size > tree.size:
                self._report.add(
                    f"{name}: the log has only {tree.size} entries "
                    "(its tail was truncated or the database rolled back)"
                )
            elif head.tree_size == tree.size and tree.root() != head.root_hash:
                self._report.add(f"{name}: the log no longer hashes to its root")
            if self._seals is not None:
                why = self._seals.problem(head.seal, head.document)
                if why:
                    self._report.add(f"{name}: its seal {why}")

    def finish(self, tree: log.MerkleRange) -> None:
        for head in self._published:
            if head.number not in self._seen_numbers:
                self._report.add(
                    f"published tree head {head.number} (size {head.tree_size}) is not in "
                    "the database (deleted, or the database rolled back)"
                )


# -- pass 2: letter by letter ------------------------------------------------------------


SENDER, RECIPIENT = aliased(models.Party), aliased(models.Party)


def _pass_letters(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    _: list[log.PublishedHead],
) -> None:
    letters = _stream(
        connection,
        select(
            L,
            SENDER.kind.label("s_kind"),
            SENDER.given_name.label("s_given"),
            SENDER.family_name.label("s_family"),
            SENDER.company_name.label("s_company"),
            SENDER.email.label("s_email"),
            RECIPIENT.kind.label("r_kind"),
            RECIPIENT.given_name.label("r_given"),
            RECIPIENT.family_name.label("r_family"),
            RECIPIENT.company_name.label("r_company"),
            RECIPIENT.email.label("r_email"),
        )
        .outerjoin(SENDER, SENDER.id == L.c.sender_id)
        .outerjoin(RECIPIENT, RECIPIENT.id == L.c.recipient_id)
        .order_by(L.c.id),
    )
    entries = _stream(
        connection,
        select(
            E.c.seq,
            E.c.letter_id,
            E.c.evidence_id,
            E.c.state,
            E.c.event,
            E.c.event_time,
            E.c.leaf,
            V.c.id.label("v_id"),
            V.c.letter_id.label("v_letter_id"),
            V.c.event.label("v_event"),
            V.c.event_time.label("v_event_time"),
            V.c.document.label("v_document"),
            V.c.seal.label("v_seal"),
        )
        .outerjoin(V, V.c.id == E.c.evidence_id)
        .where(E.c.letter_id.is_not(None))
        # Unsequenced entries (committed, not yet numbered) last, in commit order.
        .order_by(E.c.letter_id, E.c.seq.is_(None), E.c.seq, E.c.create_time),
    )
    parts = _stream(connection, select(P).order_by(P.c.letter_id, P.c.part_index))
    for letter_id, (rows, logged, letter_parts) in _merged(
        (letters, lambda r: r.id), (entries, lambda r: r.letter_id), (parts, lambda r: r.letter_id)
    ):
        _Replay(report, seals, letter_id, rows[0] if rows else None, letter_parts).run(logged)
    # Evidence rows no entry points to: written behind the log.
    orphans = _stream(
        connection,
        select(V.c.id)
        .outerjoin(E, E.c.evidence_id == V.c.id)
        .where(E.c.id.is_(None))
        .order_by(V.c.id),
    )
    for (evidence_id,) in orphans:
        report.add(f"evidence {evidence_id} is not in the log (inserted outside the service)")


def _merged(*streams: tuple[Iterator[Row[Any]], Any]) -> Iterator[tuple[Any, list[list[Any]]]]:
    """Streams sorted by letter id, grouped and aligned: (id, [rows of each stream])."""

    def groups(
        index: int, rows: Iterator[Row[Any]], key: Any
    ) -> Iterator[tuple[Any, int, list[Any]]]:
        for value, group in itertools.groupby(rows, key):
            yield value, index, list(group)

    merged = heapq.merge(
        *(groups(i, rows, key) for i, (rows, key) in enumerate(streams)),
        key=lambda item: (_sort_key(item[0]), item[1]),
    )
    for key, items in itertools.groupby(merged, key=lambda item: item[0]):
        found: list[list[Any]] = [[] for _ in streams]
        for _, index, rows in items:
            found[index] = rows
        yield key, found


def _sort_key(value: Any) -> str:
    # The databases order UUIDs bytewise, which is the order of their hex form.
    return value.hex if isinstance(value, uuid.UUID) else str(value)


def _json_object(data: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _party_name(kind: Any, given: Any, family: Any, company: Any) -> str:
    """As the service names a party in evidence (R53-2 items 1-2)."""
    if kind is PartyKind.LEGAL_PERSON:
        return company or ""
    return f"{given} {family}"


APPLY = {
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE: Letter.notify,
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: Letter.fail_notification,
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE: Letter.accept,
    EvidenceEvent.CONSIGNMENT_REJECTION: Letter.refuse,
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: Letter.expire,
    EvidenceEvent.CONTENT_HANDOVER: Letter.hand_over_content,
}
OPENING = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE: LetterState.DEPOSITED,
    EvidenceEvent.SUBMISSION_REJECTION: LetterState.REJECTED,
}


class _Replay:
    """One letter: its entries through the state machine, then its row."""

    def __init__(
        self,
        report: Report,
        seals: SealChecker | None,
        letter_id: Any,
        row: Row[Any] | None,
        parts: list[Row[Any]],
    ) -> None:
        self.report = report
        self.seals = seals
        self.id = letter_id
        self.row = row
        self.parts = parts
        self.letter: Letter | None = None
        self.hold = False
        self.last_time: dt.datetime | None = None
        self.events: set[EvidenceEvent] = set()

    def add(self, where: str, what: str) -> None:
        self.report.add(f"{where}: {what}")

    def run(self, entries: list[Row[Any]]) -> None:
        if self.row is not None:
            self.report.letters += 1
        for entry in entries:
            if entry.seq is None:
                self.report.unsequenced += 1
            self._entry(entry)
        if self.row is None:
            self.add(f"letter {self.id}", "is missing but the log has entries for it (deleted)")
        elif not entries:
            self.add(f"letter {self.id}", "has no entry in the log (inserted outside the service)")
        else:
            self._compare_row()

    def _entry(self, entry: Row[Any]) -> None:
        where = f"entry {entry.seq}" if entry.seq is not None else f"unsequenced entry of {self.id}"
        leaf = _json_object(entry.leaf)
        if leaf is None:
            self.add(where, "its leaf is not a JSON object (malformed or changed)")
            return
        try:
            record = _record(leaf)
        except (KeyError, ValueError, TypeError):
            self.add(where, "its leaf is not a log record (malformed or changed)")
            return
        if record.leaf() != entry.leaf:
            self.add(where, "its leaf is not in canonical form (changed)")
        if (
            record.letter_id != str(self.id)
            or record.state is not entry.state
            or record.event is not entry.event
            or record.event_time != entry.event_time
            or (record.evidence_id or None) != _evidence_name(self.id, entry.evidence_id)
        ):
            self.add(where, "the row no longer says what its leaf says (changed)")
        if self.last_time is not None and record.event_time < self.last_time:
            self.add(where, "dated before the letter's previous entry (back-dated or out of order)")
        self.last_time = record.event_time
        if record.legal_hold is not None:
            if self.letter is None or record.state is not self.letter.state:
                self.add(where, "a legal hold that does not follow the letter's state")
            self.hold = record.legal_hold
            return
        self._transition(where, record)
        if entry.evidence_id is not None or record.evidence_id is not None:
            self._evidence(where, record, entry)

    def _transition(self, where: str, record: log.LogRecord) -> None:
        event = record.event
        if event is None:
            self.add(where, "an entry with neither an event nor a legal hold")
            return
        if event in self.events:
            self.add(where, f"a second {event.value} for the letter")
        self.events.add(event)
        if event in OPENING:
            if self.letter is not None:
                self.add(where, f"{event.value} after the letter's deposit")
                return
            self.letter = Letter(state=OPENING[event], deposit_time=record.event_time)
            outcome_state, outcome_time = self.letter.state, record.event_time
        elif self.letter is None:
            self.add(where, f"{event.value} before the letter's deposit (its first entry)")
            return
        else:
            try:
                outcome = APPLY[event](self.letter, record.event_time)
            except DomainError as exc:
                self.add(where, f"{event.value} is not possible here: {exc}")
                return
            outcome_state, outcome_time = outcome.state, outcome.event_time
        if outcome_state is not record.state or outcome_time != record.event_time:
            self.add(
                where,
                f"{event.value} leads to {outcome_state.value} at {_utc(outcome_time)}, "
                f"the leaf says {record.state.value} at {_utc(record.event_time)}",
            )

    def _evidence(self, where: str, record: log.LogRecord, entry: Row[Any]) -> None:
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
        document = _json_object(entry.v_document)
        if document is None:
            self.add(name, "its document is not a JSON object")
        else:
            self._document(name, document, record)
        if self.seals is not None:
            why = self.seals.problem(entry.v_seal, entry.v_document)
            if why:
                self.add(name, f"its seal {why}")

    def _document(self, name: str, document: dict[str, Any], record: log.LogRecord) -> None:
        """The sealed document names this letter, this event, its parties and content."""
        row = self.row
        expected: dict[str, Any] = {
            "evidenceId": str(self._evidence_uuid(record)),
            "letterId": f"letters/{self.id}",
            "event": record.event.uri if record.event else None,
            "eventTime": _utc(record.event_time),
        }
        if self.letter is not None:
            expected["submissionTime"] = _utc(self.letter.deposit_time)
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
                for side in ("sender", "recipient"):
                    found = document.get(side)
                    if isinstance(found, dict) and "authentication" in found:
                        document = {**document, side: _without(found, "authentication")}
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
            for side, kind, given, family, company in (
                ("sender", row.s_kind, row.s_given, row.s_family, row.s_company),
                ("recipient", row.r_kind, row.r_given, row.r_family, row.r_company),
            ):
                found = document.get(side)
                written = found.get("name") if isinstance(found, dict) else None
                if isinstance(written, str) and (
                    same_name(written, company)
                    if kind is PartyKind.LEGAL_PERSON
                    else same_full_name(written, given, family)
                ):
                    expected[side] = {**expected[side], "name": written}
        wrong = sorted(k for k, v in expected.items() if document.get(k) != v)
        if wrong:
            self.add(name, f"its document does not match the letter ({', '.join(wrong)})")

    @staticmethod
    def _evidence_uuid(record: log.LogRecord) -> str:
        return (record.evidence_id or "").rsplit("/", 1)[-1]

    def _compare_row(self) -> None:
        row, letter = self.row, self.letter
        assert row is not None
        where = f"letter {self.id}"
        if letter is None:
            self.add(where, "its log has no deposit")
            return
        window = letter.window
        deadline = (
            window.closes_at
            if window is not None and letter.state is not LetterState.NOTIFICATION_FAILED
            else None
        )
        replayed = {
            "state": letter.state,
            "deposit_time": letter.deposit_time,
            "notification_time": letter.notification_time,
            "decision_time": letter.decision_time,
            "acceptance_deadline": deadline,
            "legal_hold": self.hold,
        }
        if letter.state is LetterState.REJECTED and row.wrapped_key is not None:
            self.add(where, "a rejected letter holds a content key")
        wrong = [
            f"{column} is {_show(row._mapping[column])}, the log says {_show(value)}"
            for column, value in replayed.items()
            if row._mapping[column] != value
        ]
        if wrong:
            self.add(where, "the row does not match its log: " + "; ".join(wrong))


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}"


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, LetterState):
        return value.value
    return str(value)


def _evidence_name(letter_id: Any, evidence_id: Any) -> str | None:
    return None if evidence_id is None else f"letters/{letter_id}/evidence/{evidence_id}"


def _record(leaf: dict[str, Any]) -> log.LogRecord:
    """The record a leaf states; raises KeyError/ValueError/TypeError if it is not one."""
    if leaf.get("format") != log.FORMAT:
        raise ValueError("format")
    letter = leaf["letter"]
    if not isinstance(letter, str) or not letter.startswith("letters/"):
        raise ValueError("letter")
    when = dt.datetime.fromisoformat(leaf["eventTime"])
    if when.tzinfo is None:
        raise ValueError("eventTime")
    hold = leaf.get("legalHold")
    if hold is not None and not isinstance(hold, bool):
        raise TypeError("legalHold")
    strings = [leaf.get(k) for k in ("evidence", "documentSha256", "sealSha256")]
    if any(s is not None and not isinstance(s, str) for s in strings):
        raise TypeError("evidence")
    event = leaf.get("event")
    return log.LogRecord(
        letter_id=letter.removeprefix("letters/"),
        state=LetterState(leaf["state"]),
        event_time=when.astimezone(dt.UTC),
        event=EvidenceEvent(event) if event is not None else None,
        evidence_id=strings[0],
        document_sha256=strings[1],
        seal_sha256=strings[2],
        legal_hold=hold,
    )


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _digest_value(sha256: object, v2: bool) -> str | None:
    """A part's SHA-256 as the evidence writes it: hex in lre-evidence/1,
    base64 (the XML-Enc convention) in lre-evidence/2."""
    if not isinstance(sha256, bytes):
        return None
    return base64.b64encode(sha256).decode() if v2 else sha256.hex()
