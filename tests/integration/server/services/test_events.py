"""The tamper-evident log over a real database and signer: proofs that an
independent RFC 9162 implementation accepts, and `verify_log` accepting them
(its tampering cases are in test_tampering.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from lre.server.audit.verify import verify_log
from lre.server.domain.errors import FailedPrecondition
from lre.server.domain.log import LogKind
from lre.server.domain.records import LetterRecord
from lre.server.services.events import EventLog
from lre.server.services.journal import SecurityJournal
from lre.server.storage import db, models
from tests.support import rfc9162
from tests.support.signer import SignerProcess
from tests.support.world import World

# The world's two parties are professionals: each declaration is a log entry
# first; the legal hold below is journaled too (who set it).
DECLARED = 3


def _log(world: World, signer_process: SignerProcess) -> EventLog:
    return EventLog(world.stores, world.clock, world.signer, "Test provider")


def _letters(world: World, count: int) -> list[LetterRecord]:
    letters = []
    for _ in range(count):
        letters.append(world.deposit())
        world.clock.advance(seconds=1)
    return letters


def test_inclusion_and_consistency_proofs_verify_independently(
    world: World, signer_process: SignerProcess, tmp_path: Path
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
        assert head.tree_size == DECLARED + 8 and entry.seq is not None
        assert rfc9162.verify_inclusion(entry.leaf, entry.seq, DECLARED + 8, path, head.root_hash)
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
    # Heads sealed before subtree hashes were stored: the proofs come from the leaves.
    with world.engine.begin() as connection:
        # Every complete subtree of the 10 leaves: 2n - popcount(n) nodes.
        size = DECLARED + 8
        stored = 2 * size - bin(size).count("1")
        assert connection.execute(text("DELETE FROM tree_nodes")).rowcount == stored
    assert log.consistency(DECLARED + 4, DECLARED + 8)[2] == path
    assert more
    url = world.engine.url.render_as_string(False)
    pki_dir = signer_process.paths.pki
    report = verify_log(url, signer_process.root_ca, provider=pki_dir / "provider-certificates.pem")
    assert report.ok, report.findings
    assert (report.entries, report.evidence, report.heads) == (DECLARED + 8, 7, 2)
    # The same log against a provider that declares only its TSA: the root
    # still certifies every seal, but none is the declared provider's.
    only_tsa = tmp_path / "only-tsa.pem"
    only_tsa.write_bytes((pki_dir / "timestamping.pem").read_bytes())
    report = verify_log(url, signer_process.root_ca, provider=only_tsa)
    assert not report.ok
    assert all("not one of the provider's seal certificates" in f for f in report.findings)


def test_an_evidence_not_yet_under_a_sealed_head_says_what_to_wait_for(
    world: World, signer_process: SignerProcess
) -> None:
    log = _log(world, signer_process)
    (letter,) = _letters(world, 1)
    with db.sessions(world.engine)() as session:
        (item,) = session.query(models.Evidence).filter_by(letter_id=letter.id).all()
    with pytest.raises(FailedPrecondition, match="not in the log yet"):
        log.inclusion(item.id)
    log.sequence()
    with pytest.raises(FailedPrecondition, match="retry after the next one"):
        log.inclusion(item.id)
    head = log.seal_head()
    assert head is not None
    assert log.inclusion(item.id)[1] == head
    (later,) = _letters(world, 1)
    log.sequence()
    log.seal_head()
    with db.sessions(world.engine)() as session:
        (newer,) = session.query(models.Evidence).filter_by(letter_id=later.id).all()
    with pytest.raises(FailedPrecondition, match="of that size"):
        log.inclusion(newer.id, size=head.tree_size)


def test_sequencers_at_once_number_every_entry_once_contiguously_in_commit_order(
    world: World,
) -> None:
    """Several sequencers (one per process, several replicas) while entries
    are written: every entry gets one index, 0 to n-1 with no gap, in the
    order the entries were written."""
    stop = threading.Event()
    failures: list[Exception] = []

    def sequence() -> None:
        events = EventLog(world.stores, world.clock)
        while not stop.is_set():
            try:
                events.sequence(batch=3)
            except Exception as exc:  # told below: a thread's error fails nothing itself
                failures.append(exc)
                return

    world.clock.advance(seconds=1)
    started = world.clock.now
    sequencers = [threading.Thread(target=sequence) for _ in range(3)]
    for thread in sequencers:
        thread.start()
    journal = SecurityJournal(world.stores, world.clock)
    try:
        for n in range(300):
            journal.record(LogKind.SIGNER_UP, f"signer/{n}", observer="test")
            world.clock.advance(seconds=1)
    finally:
        stop.set()
        for thread in sequencers:
            thread.join()
    assert failures == []
    EventLog(world.stores, world.clock).sequence()
    with world.engine.connect() as connection:
        entries = models.LogEntry.__table__.c
        rows = connection.execute(
            select(entries.create_time, entries.seq).order_by(entries.create_time, entries.id)
        ).all()
    assert sorted(seq for _, seq in rows) == list(range(len(rows)))
    deposited = [seq for time, seq in rows if time >= started]
    assert len(deposited) == 300 and deposited == sorted(deposited)
