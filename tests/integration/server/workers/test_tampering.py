# ruff: noqa: S608  # the tampering SQL is built from values this test read
"""`verify-log` against an insider: a database that ran a few dozen letters
through the real services and signer (deposits, notifications, acceptances
with content handover, refusals, non-claims, a failed notification, a legal
hold, three sealed and published tree heads and an unsealed tail) and wrote
the security journal (a process start, the signer's health and certificates,
a proofing, failed logins, an auditor's read of evidence), copied once per
tampering; each tampering must be named, the clean copy verified."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from lre.server.__main__ import main
from lre.server.audit.verify import verify_log
from lre.server.config import ServerSettings
from lre.server.domain import identity
from lre.server.domain import log as domain_log
from lre.server.domain.errors import AuthenticationFailed
from lre.server.domain.identity import AssuranceLevel, FactorCategory
from lre.server.domain.letters import EvidenceEvent, OutboxKind, OutboxState
from lre.server.services.custody import StaffReader
from lre.server.services.events import HEADS_FILE, EventLog
from lre.server.services.journal import SecurityJournal, SignerWatch
from lre.server.storage import db
from lre.server.workers.outbox import NoticeSealer
from lre.server.workers.signer_watch import SignerOutage
from tests.support.processes import free_port
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import World


@dataclass
class Built:
    """A database the services wrote, and the heads they published."""

    url: str
    exported: Path
    anchors: Path
    # Letter ids by what happened to them.
    refused: list[uuid.UUID]
    accepted: list[uuid.UUID]
    newest: uuid.UUID
    # Indices of journal entries under the first head, and of the tail's one.
    journal: list[int]
    tail_journal: int


def _recipient(world: World) -> identity.Session:
    return identity.Session(
        party_id=str(world.recipient.id),
        level=AssuranceLevel.SUBSTANTIAL,
        factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
        one_time_element=True,
        authenticated_at=world.clock.now,
        expires_at=world.clock.now + dt.timedelta(minutes=30),
    )


def _build(url: str, signer: SignerProcess, exported: Path) -> Built:
    world = World(url, signer, Clock(), free_port())
    events = EventLog(world.stores, world.clock, world.signer, "Test provider", exported)
    try:
        letters = []
        for _ in range(27):
            letters.append(world.deposit().id)
            world.clock.advance(seconds=1)
        # The first notice left while the signer was down: sealed later by the
        # notice sealer, dated at its hand-off, a second after its deposit.
        with world.stores.read() as store:
            (notice,) = store.outbox.page_for_letter(
                letters[0], [OutboxKind.LETTER_WAITING], 1, ""
            )[0]
        with world.stores.begin() as store:
            store.outbox.update(
                notice.id,
                state=OutboxState.SENT,
                attempts=1,
                sent_time=notice.create_time + dt.timedelta(seconds=1),
                next_attempt_time=world.clock.now,
            )
        assert not NoticeSealer(world.stores, world.decisions, world.clock, SignerOutage()).step()
        handed_at = notice.create_time + dt.timedelta(seconds=1)
        assert world.letter(letters[0]).notification_time == handed_at < world.clock.now
        for letter_id in letters[1:25]:
            with world.stores.begin() as store:
                world.decisions.record_notification(store, letter_id, world.clock.now)
            world.clock.advance(seconds=1)
        accepted, refused = letters[:6], letters[6:12]
        for letter_id in accepted:
            world.decisions.accept(_recipient(world), letter_id)
        # The sequencer orders by commit time: a frozen clock would tie the handover with
        # the acceptance, which no real download (after the acceptance committed) can.
        world.clock.advance(seconds=1)
        for letter_id in accepted[:3]:
            for _ in world.decisions.download(_recipient(world), letter_id):
                pass
        for letter_id in refused:
            world.decisions.refuse(_recipient(world), letter_id, "pas pour moi")
        world.decisions.set_legal_hold(letters[12], True, "operator.lre.internal")
        _journal(world, letters[0])
        events.sequence()
        assert events.seal_head() is not None
        world.clock.advance(days=17)
        assert world.expiry.expire_due() == 13  # letters 12 to 24
        with world.stores.begin() as store:
            world.decisions.record_notification_failure(store, letters[25], world.clock.now)
        events.sequence()
        assert events.seal_head() is not None
        newest = world.deposit().id
        events.sequence()
        assert events.seal_head() is not None
        # The tail: sequenced, not yet under a sealed head.
        with world.stores.begin() as store:
            world.decisions.record_notification(store, letters[26], world.clock.now)
        with pytest.raises(AuthenticationFailed):
            world.identity.sessions.create(world.recipient.id, "not the password", "123456")
        events.sequence()
        with world.engine.connect() as connection:
            journal = [
                seq
                for (seq,) in connection.execute(
                    text("SELECT seq FROM log_entries WHERE letter_id IS NULL ORDER BY seq")
                )
            ]
    finally:
        world.close()
    *sealed, tail = journal
    return Built(url, exported, signer.root_ca, refused, accepted, newest, sealed, tail)


def _journal(world: World, letter: uuid.UUID) -> None:
    """What the security journal records besides letters: every kind the
    world can make without a portal."""
    journal = SecurityJournal(world.stores, world.clock)
    journal.process_started("serve", "0.1.0", ServerSettings(), "host-1")
    SignerWatch(journal, world.signer, "host-1").look()  # up, seal and TSA certificates
    world.identity.proofing.record_document_check(
        world.recipient.id,
        "passport",
        "12AB34567",
        world.clock.now + dt.timedelta(days=900),
        "op-7",
        "operator.lre.internal",
        person_present=True,
    )
    for party in (world.recipient.id, uuid.uuid4()):  # a wrong password; no such party
        with pytest.raises(AuthenticationFailed):
            world.identity.sessions.create(party, "not the password", "123456")
    reader = StaffReader("auditor.lre.internal", "auditor", "ListEvidence")
    assert world.queries.evidence_for_staff(reader, letter)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def built(
    request: pytest.FixtureRequest,
    signer_process: SignerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Built]:
    directory = tmp_path_factory.mktemp("tampering")
    if request.param == "sqlite":
        yield _build(f"sqlite:///{directory / 'built.db'}", signer_process, directory / "heads")
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"lre_built_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield _build(url, signer_process, directory / "heads")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def copy(built: Built, tmp_path: Path) -> Iterator[Built]:
    """A copy of the built database to tamper with."""
    if built.url.startswith("sqlite"):
        source = sqlite3.connect(built.url.split("///", 1)[1])
        target = sqlite3.connect(tmp_path / "copy.db")
        source.backup(target)
        source.close()
        target.close()
        yield Built(**{**built.__dict__, "url": f"sqlite:///{tmp_path / 'copy.db'}"})
        return
    name = f"lre_copy_{uuid.uuid4().hex[:12]}"
    admin = create_engine(built.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(built.url).database}"')
        )
    admin.dispose()
    url = make_url(built.url).set(database=name).render_as_string(hide_password=False)
    try:
        yield Built(**{**built.__dict__, "url": url})
    finally:
        admin = create_engine(built.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- what an insider does: (SQL run on the copy) -> what verify-log must say -------------


def _one(c: Connection, sql: str, **params: object) -> Any:
    return c.execute(text(sql), params).scalar_one()


def _id(c: Connection, value: uuid.UUID) -> str:
    # SQLite stores UUIDs as 32 hex digits; PostgreSQL as uuid.
    return str(value) if c.dialect.name == "postgresql" else value.hex


def _days(c: Connection, column: str, days: int) -> str:
    if c.dialect.name == "postgresql":
        return f"{column} + interval '{days} days'"
    return f"strftime('%Y-%m-%d %H:%M:%f', {column}, '{days:+d} days')"


def _evidence(c: Connection, letter: uuid.UUID, event: EvidenceEvent) -> uuid.UUID:
    found = _one(
        c,
        "SELECT id FROM evidence WHERE letter_id = :l AND event = :e",
        l=_id(c, letter),
        e=event.value,
    )
    return found if isinstance(found, uuid.UUID) else uuid.UUID(str(found))


def refused_letter_now_accepted(c: Connection, b: Built) -> str:
    c.execute(text(f"UPDATE letters SET state = 'accepted' WHERE id = '{_id(c, b.refused[0])}'"))
    return f"letter {b.refused[0]}: the row does not match its log: state is accepted"


def refused_letter_reopened_with_a_new_deadline(c: Connection, b: Built) -> str:
    letter = _id(c, b.refused[1])
    c.execute(
        text(
            "UPDATE letters SET state = 'notified', decision_time = NULL, "
            f"acceptance_deadline = {_days(c, 'acceptance_deadline', 30)} WHERE id = '{letter}'"
        )
    )
    return f"letter {b.refused[1]}: the row does not match its log: state is notified"


def letter_back_dated(c: Connection, b: Built) -> str:
    letter = _id(c, b.accepted[0])
    c.execute(
        text(
            f"UPDATE letters SET deposit_time = {_days(c, 'deposit_time', -2)} "
            f"WHERE id = '{letter}'"
        )
    )
    return f"letter {b.accepted[0]}: the row does not match its log: deposit_time is"


def evidence_moved_to_another_letter(c: Connection, b: Built) -> str:
    moved = _evidence(c, b.accepted[0], EvidenceEvent.CONSIGNMENT_ACCEPTANCE)
    c.execute(
        text(
            f"UPDATE evidence SET letter_id = '{_id(c, b.refused[2])}' WHERE id = '{_id(c, moved)}'"
        )
    )
    return f"belongs to letter {b.refused[2]}, its entry to {b.accepted[0]} (moved)"


def sealed_tree_head_deleted(c: Connection, b: Built) -> str:
    c.execute(text("DELETE FROM tree_heads WHERE number = 2"))
    return "tree head 2 is missing (deleted)"


def newest_letter_erased_with_all_its_rows(c: Connection, b: Built) -> str:
    """A rolled-back database: the newest letter never happened, the entries
    after it renumbered, the heads that covered it gone. Only the published
    heads show it."""
    letter = _id(c, b.newest)
    seq = _one(c, f"SELECT seq FROM log_entries WHERE letter_id = '{letter}'")
    for table in ("log_entries", "evidence", "outbox_messages", "charges", "content_chunks"):
        c.execute(text(f"DELETE FROM {table} WHERE letter_id = '{letter}'"))
    c.execute(text(f"DELETE FROM letter_parts WHERE letter_id = '{letter}'"))
    c.execute(text(f"DELETE FROM letters WHERE id = '{letter}'"))
    # Through negative numbers: the unique index is checked row by row.
    c.execute(text(f"UPDATE log_entries SET seq = -(seq - 1) WHERE seq > {seq}"))
    c.execute(text("UPDATE log_entries SET seq = -seq WHERE seq < 0"))
    c.execute(text(f"DELETE FROM tree_heads WHERE tree_size > {seq}"))
    # And the subtree hashes those heads wrote, as a restore from before them would.
    kept = _one(c, "SELECT max(tree_size) FROM tree_heads")
    for level, position in c.execute(text("SELECT level, position FROM tree_nodes")).all():
        if (position + 1) << level > kept:
            c.execute(
                text("DELETE FROM tree_nodes WHERE level = :l AND position = :p"),
                {"l": level, "p": position},
            )
    return "published tree head 3 (size"


def newest_evidence_rewritten_consistently_in_the_log(c: Connection, b: Built) -> str:
    """The tail's evidence, document and leaf changed together: no head covers
    it yet, but its seal does not cover the new document."""
    row = c.execute(
        text(
            "SELECT seq, evidence_id, leaf FROM log_entries WHERE evidence_id IS NOT NULL "
            "ORDER BY seq DESC LIMIT 1"
        )
    ).one()
    evidence = _id(
        c, row.evidence_id if isinstance(row.evidence_id, uuid.UUID) else uuid.UUID(row.evidence_id)
    )
    document = json.loads(_one(c, f"SELECT document FROM evidence WHERE id = '{evidence}'"))
    document["recipient"]["email"] = "someone-else@example.com"
    new_document = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    leaf = json.loads(row.leaf)
    leaf["documentSha256"] = domain_log.sha256_hex(new_document)
    new_leaf = json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()
    c.execute(
        text(f"UPDATE evidence SET document = :d WHERE id = '{evidence}'"), {"d": new_document}
    )
    c.execute(
        text("UPDATE log_entries SET leaf = :l WHERE seq = :s"), {"l": new_leaf, "s": row.seq}
    )
    return f"(entry {row.seq}): its seal does not cover its document"


def leaf_replaced_by_an_empty_list(c: Connection, b: Built) -> str:
    c.execute(text("UPDATE log_entries SET leaf = :l WHERE seq = 5"), {"l": b"[]"})
    return "entry 5: its leaf is not a JSON object"


def evidence_document_changed(c: Connection, b: Built) -> str:
    evidence = _evidence(c, b.accepted[1], EvidenceEvent.SUBMISSION_ACCEPTANCE)
    c.execute(
        text(f"UPDATE evidence SET document = :d WHERE id = '{_id(c, evidence)}'"), {"d": b"{}"}
    )
    return f"evidence {evidence} (entry"


def seal_byte_changed(c: Connection, b: Built) -> str:
    evidence = _evidence(c, b.refused[3], EvidenceEvent.CONSIGNMENT_REJECTION)
    seal = bytearray(_one(c, f"SELECT seal FROM evidence WHERE id = '{_id(c, evidence)}'"))
    seal[-40] ^= 1
    c.execute(
        text(f"UPDATE evidence SET seal = :s WHERE id = '{_id(c, evidence)}'"), {"s": bytes(seal)}
    )
    return f"evidence {evidence} (entry"


def log_entry_deleted(c: Connection, b: Built) -> str:
    c.execute(text("DELETE FROM log_entries WHERE seq = 3"))
    return "entry 3 is missing (deleted)"


def entry_and_evidence_back_dated(c: Connection, b: Built) -> str:
    evidence = _evidence(c, b.accepted[2], EvidenceEvent.CONSIGNMENT_ACCEPTANCE)
    c.execute(
        text(
            f"UPDATE evidence SET event_time = {_days(c, 'event_time', -2)} "
            f"WHERE id = '{_id(c, evidence)}'"
        )
    )
    c.execute(
        text(
            f"UPDATE log_entries SET event_time = {_days(c, 'event_time', -2)} "
            f"WHERE evidence_id = '{_id(c, evidence)}'"
        )
    )
    return "the row no longer says what its leaf says (changed)"


def entry_index_moved_far_ahead(c: Connection, b: Built) -> str:
    last = _one(c, "SELECT MAX(seq) FROM log_entries")
    c.execute(text(f"UPDATE log_entries SET seq = {10**12} WHERE seq = {last}"))
    return f"entry {last} to {10**12 - 1} is missing (deleted)"


def two_entries_swapped(c: Connection, b: Built) -> str:
    c.execute(text("UPDATE log_entries SET seq = 100000 WHERE seq = 1"))
    c.execute(text("UPDATE log_entries SET seq = 1 WHERE seq = 4"))
    c.execute(text("UPDATE log_entries SET seq = 4 WHERE seq = 100000"))
    return "tree head 1 (size"


def head_seal_changed(c: Connection, b: Built) -> str:
    seal = bytearray(_one(c, "SELECT seal FROM tree_heads WHERE number = 1"))
    seal[-40] ^= 1
    c.execute(text("UPDATE tree_heads SET seal = :s WHERE number = 1"), {"s": bytes(seal)})
    return "tree head 1 (size"


def evidence_inserted_behind_the_log(c: Connection, b: Built) -> str:
    new = uuid.uuid4()
    handover = _evidence(c, b.accepted[0], EvidenceEvent.CONTENT_HANDOVER)
    c.execute(
        text(
            "INSERT INTO evidence (id, letter_id, event, event_time, document, seal) "
            f"SELECT '{_id(c, new)}', '{_id(c, b.accepted[4])}', event, event_time, document, seal "
            f"FROM evidence WHERE id = '{_id(c, handover)}'"
        )
    )
    return f"evidence {new} is not in the log (inserted outside the service)"


def _leaf(c: Connection, seq: int) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_one(c, f"SELECT leaf FROM log_entries WHERE seq = {seq}"))
    return found


def _set_leaf(c: Connection, seq: int, leaf: dict[str, Any]) -> None:
    new = json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()
    c.execute(text("UPDATE log_entries SET leaf = :l WHERE seq = :s"), {"l": new, "s": seq})


def journal_entry_changed(c: Connection, b: Built) -> str:
    """A failed login turned into a success, consistently in the leaf."""
    seq = next(s for s in b.journal if _leaf(c, s)["kind"] == "authentication_failed")
    leaf = _leaf(c, seq)
    leaf["kind"], leaf["reason"] = "password_set", None
    _set_leaf(c, seq, {k: v for k, v in leaf.items() if v is not None and k != "purpose"})
    return f"entry {seq}: not the entry sealed at this index"


def journal_entry_deleted(c: Connection, b: Built) -> str:
    seq = next(s for s in b.journal if _leaf(c, s)["kind"] == "evidence_read")
    c.execute(text(f"DELETE FROM log_entries WHERE seq = {seq}"))
    return f"entry {seq} is missing (deleted)"


def journal_entry_deleted_and_the_rest_renumbered(c: Connection, b: Built) -> str:
    seq = next(s for s in b.journal if _leaf(c, s)["kind"] == "identity_proofed")
    c.execute(text(f"DELETE FROM log_entries WHERE seq = {seq}"))
    c.execute(text(f"UPDATE log_entries SET seq = -(seq - 1) WHERE seq > {seq}"))
    c.execute(text("UPDATE log_entries SET seq = -seq WHERE seq < 0"))
    return f"entry {seq}: not the entry sealed at this index"


def journal_entries_reordered(c: Connection, b: Built) -> str:
    first, second = b.journal[2], b.journal[5]
    c.execute(text(f"UPDATE log_entries SET seq = -1 WHERE seq = {first}"))
    c.execute(text(f"UPDATE log_entries SET seq = {first} WHERE seq = {second}"))
    c.execute(text(f"UPDATE log_entries SET seq = {second} WHERE seq = -1"))
    return f"entry {first}: not the entry sealed at this index"


def journal_entry_inserted(c: Connection, b: Built) -> str:
    """A lockout that never happened, slipped in among the sealed entries."""
    seq = b.journal[4]
    c.execute(text(f"UPDATE log_entries SET seq = -(seq + 1) WHERE seq >= {seq}"))
    c.execute(text("UPDATE log_entries SET seq = -seq WHERE seq < 0"))
    leaf = {**_leaf(c, seq + 1), "kind": "locked_out", "lockedUntil": "2030-01-01T00:00:00Z"}
    c.execute(
        text(
            "INSERT INTO log_entries (id, seq, event_time, leaf, create_time) "
            "SELECT :id, :seq, event_time, :leaf, create_time FROM log_entries WHERE seq = :next"
        ),
        {
            "id": _id(c, uuid.uuid4()),
            "seq": seq,
            "next": seq + 1,
            "leaf": json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode(),
        },
    )
    return f"entry {seq}: not the entry sealed at this index"


def journal_row_re_dated(c: Connection, b: Built) -> str:
    seq = b.journal[3]
    c.execute(
        text(f"UPDATE log_entries SET event_time = {_days(c, 'event_time', -1)} WHERE seq = {seq}")
    )
    return f"entry {seq}: the row no longer says what its leaf says (changed)"


def journal_tail_entry_given_a_password(c: Connection, b: Built) -> str:
    """After the last head only the journal's own rules vouch: a field its kind lacks is named."""
    _set_leaf(c, b.tail_journal, {**_leaf(c, b.tail_journal), "password": "hunter2hunter2"})
    return f"entry {b.tail_journal}: a authentication_failed entry that carries password"


def journal_tail_entry_of_an_unknown_kind(c: Connection, b: Built) -> str:
    _set_leaf(c, b.tail_journal, {**_leaf(c, b.tail_journal), "kind": "key_destroyed"})
    return f"entry {b.tail_journal}: an unknown kind 'key_destroyed'"


def identity_record_level_raised(c: Connection, b: Built) -> str:
    """A document check in person (high) turned into a remote one (substantial)."""
    record = _one(c, "SELECT id FROM identity_records")
    c.execute(text("UPDATE identity_records SET level = 'substantial'"))
    return f"identity record parties/{_party(c)}/identityRecords/{_uuid(record)} (entry"


def identity_record_deleted(c: Connection, b: Built) -> str:
    record = _one(c, "SELECT id FROM identity_records")
    c.execute(text("DELETE FROM identity_records"))
    return f"identityRecords/{_uuid(record)} (entry"


def identity_record_inserted_behind_the_journal(c: Connection, b: Built) -> str:
    """A second proofing of the recipient that no operator recorded."""
    c.execute(
        text(
            "INSERT INTO identity_records (id, party_id, method, level, proof_time, "
            "expire_time, evidence_summary, details) SELECT :id, party_id, method, 'high', "
            "proof_time, expire_time, evidence_summary, details FROM identity_records"
        ),
        {"id": _id(c, uuid.uuid4())},
    )
    return "1 identity records proofed since the journal began have no journal entry"


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _party(c: Connection) -> uuid.UUID:
    return _uuid(_one(c, "SELECT party_id FROM identity_records"))


TAMPERINGS: dict[str, Callable[[Connection, Built], str]] = {
    change.__name__: change
    for change in (
        refused_letter_now_accepted,
        refused_letter_reopened_with_a_new_deadline,
        letter_back_dated,
        evidence_moved_to_another_letter,
        sealed_tree_head_deleted,
        newest_letter_erased_with_all_its_rows,
        newest_evidence_rewritten_consistently_in_the_log,
        leaf_replaced_by_an_empty_list,
        evidence_document_changed,
        seal_byte_changed,
        log_entry_deleted,
        entry_and_evidence_back_dated,
        two_entries_swapped,
        entry_index_moved_far_ahead,
        head_seal_changed,
        evidence_inserted_behind_the_log,
        journal_entry_changed,
        journal_entry_deleted,
        journal_entry_deleted_and_the_rest_renumbered,
        journal_entries_reordered,
        journal_entry_inserted,
        journal_row_re_dated,
        journal_tail_entry_given_a_password,
        journal_tail_entry_of_an_unknown_kind,
        identity_record_level_raised,
        identity_record_deleted,
        identity_record_inserted_behind_the_journal,
    )
}


def test_the_clean_database_verifies(copy: Built) -> None:
    report = verify_log(copy.url, copy.anchors, copy.exported)
    assert report.ok, report.findings
    assert (report.letters, report.heads, report.published) == (28, 3, 3)
    # Two professional declarations, the legal hold's operator, a process start,
    # the signer up with its two certificates, a proofing and its enrolment
    # code, two failed logins (the third names no party: counted, not
    # journaled) and an auditor's read.
    assert report.journal == len(copy.journal) + 1 == 12
    # Neither the journal nor the legal hold's letter entry has evidence.
    assert report.evidence == report.entries - report.journal - 1


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_verify_log_names_each_tampering(copy: Built, tampering: str) -> None:
    engine = db.make_engine(copy.url)
    try:
        with engine.begin() as connection:
            expected = TAMPERINGS[tampering](connection, copy)
    finally:
        engine.dispose()
    report = verify_log(copy.url, copy.anchors, copy.exported)
    assert not report.ok
    assert any(expected in finding for finding in report.findings), report.findings


def test_a_rolled_back_database_looks_whole_but_to_its_published_heads(copy: Built) -> None:
    """Why the heads are published outside the database: once committed, the
    erased letter leaves a database that verifies alone."""
    engine = db.make_engine(copy.url)
    try:
        with engine.begin() as connection:
            expected = newest_letter_erased_with_all_its_rows(connection, copy)
    finally:
        engine.dispose()
    alone = verify_log(copy.url, copy.anchors)
    assert alone.ok, alone.findings
    against = verify_log(copy.url, copy.anchors, copy.exported)
    assert any(expected in finding for finding in against.findings), against.findings


def test_the_command_exits_0_then_1(
    copy: Built, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LRE_SERVER_DATABASE_URL", copy.url)
    monkeypatch.setenv("LRE_SERVER_SEAL_TRUST_ANCHORS_FILE", str(copy.anchors))
    assert main(["verify-log", "--against", str(copy.exported)]) == 0
    said = capsys.readouterr()
    assert "log verified" in said.out
    # Quick: no progress line (one at most every 10 s by default).
    assert "pass," not in said.err
    # A progress line at every step, on stderr (the report stays on stdout).
    every = ["--progress-every", "1e-9"]
    assert main(["verify-log", "--against", str(copy.exported), *every]) == 0
    said = capsys.readouterr()
    passes = re.findall(r"^verify-log: (\w+) pass, (\d+) log entries", said.err, re.MULTILINE)
    assert {name for name, _ in passes} == {"log", "letters", "journal"}, said.err
    logged = [int(n) for name, n in passes if name == "log"]
    assert logged == sorted(logged) and logged[-1] > 1
    assert "pass," not in said.out
    engine = db.make_engine(copy.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE log_entries SET leaf = :l WHERE seq = 0"), {"l": b"[]"})
    engine.dispose()
    assert main(["verify-log", "--against", str(copy.exported)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM entry 0: its leaf is not a JSON object" in out and "Traceback" not in out
    assert (copy.exported / HEADS_FILE).exists()


@pytest.mark.parametrize("built", ["sqlite"], indirect=True)  # PostgreSQL's types refuse it
def test_a_value_its_column_cannot_hold_is_a_finding(copy: Built) -> None:
    engine = db.make_engine(copy.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE letters SET deposit_time = 'yesterday' WHERE rowid = 3"))
    engine.dispose()
    report = verify_log(copy.url, copy.anchors, copy.exported)
    (finding,) = report.findings
    assert finding.startswith("the letters pass stopped at an unreadable row (ValueError")


def test_a_rewritten_published_head_is_named(copy: Built, tmp_path: Path) -> None:
    published = tmp_path / HEADS_FILE
    lines = (copy.exported / HEADS_FILE).read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["rootHash"] = "00" * 32
    lines[1] = json.dumps(record).encode() + b"\n"
    published.write_bytes(b"".join(lines))
    report = verify_log(copy.url, copy.anchors, published)
    assert report.findings == ["published head file, line 2: malformed or rewritten"]
