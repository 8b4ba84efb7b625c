# ruff: noqa: S608  # the tampering SQL is built from values this test made
"""The tamper-evident log over a real database and signer: proofs that an
independent RFC 9162 implementation accepts, and `verify_log` naming each
kind of tampering with the rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text

from lre.server.domain.records import LetterRecord
from lre.server.services.audit import verify_log
from lre.server.services.events import EventLog
from lre.server.storage import db, models
from tests import rfc9162
from tests.conftest import SignerProcess
from tests.integration.world import World

# The world's sender and recipient are companies created as professionals:
# their declarations are the log's first two entries.
DECLARED = 2


def _log(world: World, signer_process: SignerProcess) -> EventLog:
    return EventLog(world.stores, world.clock, world.signer, "Test provider")


def _letters(world: World, count: int) -> list[LetterRecord]:
    letters = []
    for _ in range(count):
        letters.append(world.deposit())
        world.clock.advance(seconds=1)
    return letters


def test_inclusion_and_consistency_proofs_verify_independently(
    world: World, signer_process: SignerProcess
) -> None:
    log = _log(world, signer_process)
    first_letters = _letters(world, 3)
    world.decisions.set_legal_hold(first_letters[0].id, True)  # an entry with no evidence
    log.sequence()
    first = log.seal_head()
    more = _letters(world, 4)
    log.sequence()
    second = log.seal_head()
    assert first is not None and second is not None
    assert (first.tree_size, second.tree_size) == (DECLARED + 4, DECLARED + 8)
    with db.sessions(world.engine)() as session:
        evidence = session.query(models.Evidence).all()
    assert len(evidence) == 7
    for item in evidence:
        entry, head, path = log.inclusion(item.id)
        size = DECLARED + 8
        assert head.tree_size == size and entry.seq is not None
        assert rfc9162.verify_inclusion(entry.leaf, entry.seq, size, path, head.root_hash)
        assert json.loads(entry.leaf)["evidence"].endswith(str(item.id))
    for letter in first_letters:
        (item,) = [e for e in evidence if e.letter_id == letter.id]
        first_size = DECLARED + 4
        entry, head, path = log.inclusion(item.id, size=first_size)
        assert rfc9162.verify_inclusion(
            entry.leaf, entry.seq or 0, first_size, path, head.root_hash
        )
    old, new, path = log.consistency(DECLARED + 4, DECLARED + 8)
    assert rfc9162.verify_consistency(
        DECLARED + 4, DECLARED + 8, old.root_hash, new.root_hash, path
    )
    assert more
    report = verify_log(db.sessions(world.engine), signer_process.root_ca)
    assert report.ok, report.problems
    assert (report.entries, report.evidence, report.heads) == (DECLARED + 8, 7, 2)


def _evidence_id(world: World, seq: int) -> str:
    with world.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT evidence_id FROM log_entries WHERE seq = :s"), {"s": seq}
            ).scalar_one()
        )


def _hex(evidence_id: str, world: World) -> str:
    # SQLite stores UUIDs as 32 hex digits; PostgreSQL as uuid.
    return evidence_id if world.engine.dialect.name == "postgresql" else uuid.UUID(evidence_id).hex


def _blob(world: World) -> str:
    return "bytea" if world.engine.dialect.name == "postgresql" else "BLOB"


# Each returns the SQL an insider would run, and what verify_log must then say.
def change_an_evidence_document(world: World) -> tuple[list[str], str]:
    seq = DECLARED + 2
    evidence = _evidence_id(world, seq)
    return [
        f"UPDATE evidence SET document = CAST('{{}}' AS {_blob(world)}) "
        f"WHERE id = '{_hex(evidence, world)}'"
    ], f"evidence {uuid.UUID(evidence)} (entry {seq}) was changed"


def delete_a_log_entry(world: World) -> tuple[list[str], str]:
    return ["DELETE FROM log_entries WHERE seq = 3"], "entry 3 is missing (deleted)"


def reorder_two_entries(world: World) -> tuple[list[str], str]:
    return [
        "UPDATE log_entries SET seq = 1000 WHERE seq = 1",
        "UPDATE log_entries SET seq = 1 WHERE seq = 4",
        "UPDATE log_entries SET seq = 4 WHERE seq = 1000",
    ], f"tree head {DECLARED + 7}: the log no longer hashes to its root"


def back_date_an_entry(world: World) -> tuple[list[str], str]:
    if world.engine.dialect.name == "postgresql":
        shifted = "event_time - interval '2 days'"
    else:
        shifted = "datetime(event_time, '-2 days')"
    return [f"UPDATE log_entries SET event_time = {shifted} WHERE seq = {DECLARED + 5}"], (
        f"entry {DECLARED + 5}: the row no longer says what its leaf says"
    )


def rewrite_a_professional_declaration(world: World) -> tuple[list[str], str]:
    """A party's entry (no letter): its leaf rewritten to another kind."""
    with world.engine.connect() as connection:
        seq = connection.execute(
            text("SELECT min(seq) FROM log_entries WHERE letter_id IS NULL")
        ).scalar_one()
    leaf = '{"kind":"consent_granted"}'
    return [
        f"UPDATE log_entries SET leaf = CAST('{leaf}' AS {_blob(world)}) WHERE seq = {seq}"
    ], f"tree head {DECLARED + 7}: the log no longer hashes to its root"


def insert_an_evidence_behind_the_log(world: World) -> tuple[list[str], str]:
    new = uuid.uuid4()
    ident = str(new) if world.engine.dialect.name == "postgresql" else new.hex
    return [
        "INSERT INTO evidence (id, letter_id, event, event_time, document, seal) "
        f"SELECT '{ident}', letter_id, 'ContentHandover', event_time, document, seal "
        f"FROM evidence WHERE id = (SELECT evidence_id FROM log_entries WHERE seq = {DECLARED + 1})"
    ], f"evidence {new} is not in the log (inserted outside the service)"


TAMPERINGS: dict[str, Callable[[World], tuple[list[str], str]]] = {
    change.__name__: change
    for change in (
        change_an_evidence_document,
        delete_a_log_entry,
        reorder_two_entries,
        back_date_an_entry,
        insert_an_evidence_behind_the_log,
        rewrite_a_professional_declaration,
    )
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_verify_log_names_each_tampering(
    world: World, signer_process: SignerProcess, tampering: str
) -> None:
    log = _log(world, signer_process)
    _letters(world, 7)
    log.sequence()
    assert log.seal_head() is not None
    assert verify_log(db.sessions(world.engine), signer_process.root_ca).ok
    statements, expected = TAMPERINGS[tampering](world)
    with world.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    report = verify_log(db.sessions(world.engine), signer_process.root_ca)
    assert not report.ok
    assert any(expected in problem for problem in report.problems), report.problems
