"""The outbox under faults, with real processes: an API server
(`run_workers = false`) takes the deposits, `lre-server work` dispatches to a
real SMTP server (aiosmtpd, in this process) and is killed with SIGKILL; the
signer is stopped and started again; PostgreSQL cuts every connection.

What must hold: every message reaches its recipient; a message goes again
only after a crash, at most once per crash, with the same Message-ID, and
the resend shows (``resends`` on its row, ``lre_notifications_resent_total``);
a notice is dated when its hand-off returned, sealed later if the signer was
down, and never sent once per second meanwhile. Each test is bounded (well
under a minute on this 2-core machine)."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, Row, create_engine, func, select, text
from sqlalchemy.engine import make_url

from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxKind, OutboxState
from lre.server.storage import models
from lre.server.workers.outbox.notices import NOTICE_GRACE
from lre.server.workers.signer_watch import SIGNER_PAUSE
from lre.signer.devsetup import DevPaths
from lre.v1 import custody_pb2_grpc, identity_pb2_grpc
from tests.support.clients import deposit_letter, register_company
from tests.support.mail import Inbox
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess, signer_env

LEASE_S = 4
# The worker's settings: a short lease (the SMTP timeout well under it), quick retries.
WORKER = {
    "LRE_SERVER_OUTBOX_INTERVAL_S": "0.1",
    "LRE_SERVER_OUTBOX_LEASE_S": str(LEASE_S),
    "LRE_SERVER_SMTP_TIMEOUT_S": "1",
    "LRE_SERVER_OUTBOX_FIRST_RETRY_S": "1",
    "LRE_SERVER_LOG_LEVEL": "WARNING",
    "LRE_SERVER_MAIL_FROM": "LRE <notifications@lre.test>",
}
PART = [("lettre.txt", "text/plain", b"lettre recommandee\n" * 10)]
RECIPIENT = "courrier@dest.example"


@dataclass
class Rig:
    """The API server with two parties, the SMTP server, and how to run workers."""

    api: ServerProcess
    database_url: str
    signer_address: str
    inbox: Inbox
    smtp_port: int
    tmp_path: Path
    token: str
    recipient: str
    engine: Engine

    def deposit(self, count: int) -> None:
        with contextlib.closing(_channel(self.api.address)) as channel:
            custody = custody_pb2_grpc.CustodyServiceStub(channel)
            for _ in range(count):
                deposit_letter(custody, self.token, self.recipient, str(uuid.uuid4()), PART)

    @contextlib.contextmanager
    def worker(self, n: int, **extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        """`lre-server work` number ``n``; with its metrics URL."""
        metrics_port = free_port()
        env = {
            "LRE_SERVER_DATABASE_URL": self.database_url,
            "LRE_SERVER_SECRETS_KEY_FILE": str(self.tmp_path / "server.key"),
            "LRE_SERVER_SIGNER_ADDRESS": self.signer_address,
            "LRE_SERVER_MAIL_TRANSPORT": f"smtp://127.0.0.1:{self.smtp_port}",
            "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            **WORKER,
            **extra,
        }
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with running([str(BIN / "lre-server"), "work"], env, self.tmp_path / f"work-{n}.log") as p:
            assert wait_for(lambda: _scrape(url) is not None, timeout=60), self.log(n)
            yield p, url

    def log(self, n: int) -> str:
        return (self.tmp_path / f"work-{n}.log").read_text()[-3000:]

    def rows(self) -> list[Row[Any]]:
        """The outbox, but for the reminders (they wait their day)."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(models.OutboxMessage.__table__).where(
                        models.OutboxMessage.kind != OutboxKind.REMINDER.value
                    )
                )
            )

    def all_sent(self) -> bool:
        rows = self.rows()
        return bool(rows) and all(r.state is OutboxState.SENT for r in rows)

    def letters(self) -> list[Row[Any]]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(models.Letter.__table__)))

    def sequenced(self) -> bool:
        with self.engine.connect() as connection:
            return not connection.execute(
                select(func.count()).where(models.LogEntry.seq.is_(None))
            ).scalar_one()

    def received(self) -> collections.Counter[str]:
        return collections.Counter(str(m["Message-ID"]) for m in list(self.inbox.messages))


def _channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address)


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # our own test URL
            return str(reply.read().decode())
    except OSError:
        return None


def _sample(url: str, name: str) -> float:
    """The sum of a metric's samples on one process's /metrics."""
    body = _scrape(url)
    assert body is not None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def _message_id(row: Row[Any]) -> str:
    return f"<{row.id}@lre.test>"


@contextlib.contextmanager
def rig(
    signer: SignerProcess, tmp_path: Path, database_url: str, slow_s: float = 0.0
) -> Iterator[Rig]:
    def slowly(_: Message) -> None:
        time.sleep(slow_s)  # the mail server takes its time: kills land mid-send

    smtp_port = free_port()
    with (
        Inbox(smtp_port, on_data=slowly if slow_s else None) as inbox,
        server_process(
            signer,
            tmp_path,
            database_url,
            run_workers="false",
            mail_from="LRE <notifications@lre.test>",
        ) as api,
    ):
        with contextlib.closing(_channel(api.address)) as channel:
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            _, token = register_company(
                identity, api.enrolment_codes, "of-s", "Expediteur SAS", "envoi@exp.example"
            )
            recipient, _ = register_company(
                identity, api.enrolment_codes, "of-r", "Dest SA", RECIPIENT
            )
        engine = create_engine(database_url)
        try:
            yield Rig(
                api,
                database_url,
                signer.grpc_address,
                inbox,
                smtp_port,
                tmp_path,
                token,
                recipient,
                engine,
            )
        finally:
            engine.dispose()


def _check_letters_notified_at_hand_off(r: Rig) -> None:
    """Every letter notified once, at its notice's hand-off."""
    notices = {row.letter_id: row for row in r.rows() if row.kind == OutboxKind.LETTER_WAITING}
    letters = r.letters()
    assert letters and {letter.state for letter in letters} == {LetterState.NOTIFIED}
    with r.engine.connect() as connection:
        evidence = collections.Counter(
            (e.letter_id, e.event_time)
            for e in connection.execute(
                select(models.Evidence).where(
                    models.Evidence.event == EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE
                )
            )
        )
    for letter in letters:
        sent_time = notices[letter.id].sent_time
        assert letter.notification_time == sent_time
        assert evidence[(letter.id, sent_time)] == 1
    assert sum(evidence.values()) == len(letters)


@pytest.mark.parametrize("kills", [2])
def test_worker_killed_mid_dispatch_every_message_arrives_at_most_one_resend_per_crash(
    signer_process: SignerProcess, tmp_path: Path, database_url: str, kills: int
) -> None:
    started = time.monotonic()
    with rig(signer_process, tmp_path, database_url, slow_s=0.05) as r:
        r.deposit(20)  # 20 notices, 20 proofs of deposit (a signed PDF each), 2 codes
        stranded: list[int] = []  # messages left SENDING by each kill
        resent_seen: list[float] = []  # what each worker's counter said
        for n in range(kills):
            if n > 0:
                r.deposit(12)  # deposits go on: each kill lands on a worker with work
            with r.worker(n) as (process, url):
                if n > 0:
                    # It sends again what the killed one held, once its lease ran out.
                    assert wait_for(
                        lambda url=url: (
                            _sample(url, "lre_notifications_resent_total") >= stranded[-1]
                        ),
                        timeout=LEASE_S + 20,
                    ), r.log(n)
                before = sum(r.received().values())
                assert wait_for(lambda b=before: sum(r.received().values()) >= b + 8, 60), r.log(n)
                resent_seen.append(_sample(url, "lre_notifications_resent_total"))
                # Killed while it holds a claim, as far as the database shows a moment before.
                wait_for(
                    lambda: any(row.state is OutboxState.SENDING for row in r.rows()),
                    timeout=10,
                    interval=0.01,
                )
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
            stranded.append(sum(1 for row in r.rows() if row.state is OutboxState.SENDING))
        with r.worker(kills) as (_, url):
            assert wait_for(
                lambda: _sample(url, "lre_notifications_resent_total") >= stranded[-1],
                timeout=LEASE_S + 20,
            ), r.log(kills)
            assert wait_for(r.all_sent, timeout=60), r.log(kills)
            # A worker killed between recording a notice and sealing it leaves
            # it to the notice sealer (after NOTICE_GRACE): never a resend.
            assert wait_for(
                lambda: {letter.state for letter in r.letters()} == {LetterState.NOTIFIED}, 30
            ), r.log(kills)
            resent_seen.append(_sample(url, "lre_notifications_resent_total"))
            assert _sample(url, 'lre_notifications_resent_total{kind="reminder"}') == 0
        rows = r.rows()
        received = r.received()
        # Every message arrived; again only when a crash stranded it, once per crash.
        kinds = collections.Counter(row.kind for row in rows)
        letters = 20 + 12 * (kills - 1)
        assert kinds[OutboxKind.LETTER_WAITING] == kinds[OutboxKind.PROOF] == letters
        assert all(received[_message_id(row)] >= 1 for row in rows)
        assert all(received[_message_id(row)] <= 1 + row.resends for row in rows)
        assert all(row.resends <= kills for row in rows)
        assert all(row.attempts >= 1 + row.resends for row in rows)
        # The resends show: on the rows, and in the counters of the workers that made them.
        # Kills land mid-batch, mostly: one may land between two batches (after
        # a notice's seal, before the next claim) or, on SQLite, while the claim
        # waits for the write lock; nothing is stranded then, which is right too.
        assert sum(stranded) >= kills, stranded
        assert sum(row.resends for row in rows) == sum(stranded) == sum(resent_seen)
        duplicates = sum(count - 1 for count in received.values())
        assert duplicates <= sum(stranded)
        assert set(received) == {_message_id(row) for row in rows}
        _check_letters_notified_at_hand_off(r)
    print(
        f"\noutbox kills: {kills} SIGKILLs, stranded {stranded}, {duplicates} duplicate"
        f" deliveries of {len(rows)}; {time.monotonic() - started:.1f} s"
    )


# Letters for more than one of the dispatcher's batches (their notices, proofs
# and the codes), few enough to stay under half a minute on a slow machine.
LETTERS = 6


# On PostgreSQL only: what an outage does to the outbox is the same on SQLite,
# where tests/integration/server/workers/test_outbox_steps.py covers it in process.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_signer_stopped_each_notice_goes_once_and_is_sealed_later_at_its_hand_off(
    dev_var: DevPaths, tmp_path: Path, database_url: str
) -> None:
    started = time.monotonic()
    grpc_port, http_port = free_port(), free_port()
    address = f"127.0.0.1:{grpc_port}"
    env = signer_env(dev_var, grpc_port, http_port)
    signer = SignerProcess(address, f"http://127.0.0.1:{http_port}", dev_var, tmp_path / "s.log")
    # From the moment the notices have left: past the notice sealer's look at
    # them (NOTICE_GRACE) and a few health checks (each one that finds the
    # signer down renews the workers' pause).
    outage_s = 3 * NOTICE_GRACE.total_seconds()
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(
            running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer-0.log")
        )
        assert wait_for(lambda: health_status(address) == SERVING)
        r = stack.enter_context(rig(signer, tmp_path, database_url))
        r.deposit(LETTERS)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        process, url = stack.enter_context(r.worker(0))
        # During the outage: every notice and both codes leave, once each; the
        # proofs (a PDF the signer signs) wait; no letter is notified yet.
        assert wait_for(
            lambda: sum(1 for m in r.inbox.messages if m["To"] == RECIPIENT) >= LETTERS, timeout=10
        ), r.log(0)
        time.sleep(outage_s)
        received = r.received()
        waiting = {_message_id(row) for row in r.rows() if row.kind == OutboxKind.PROOF}
        assert len(waiting) == LETTERS
        assert set(received) == {_message_id(row) for row in r.rows()} - waiting
        assert set(received.values()) == {1}, received
        assert {letter.state for letter in r.letters()} == {LetterState.DEPOSITED}
        notices = [row for row in r.rows() if row.kind == OutboxKind.LETTER_WAITING]
        assert {(row.state, row.attempts) for row in notices} == {(OutboxState.SENT, 1)}
        # The proofs wait, queued, no attempt counted.
        proofs = [row for row in r.rows() if row.kind == OutboxKind.PROOF]
        assert {(row.state, row.attempts) for row in proofs} == {(OutboxState.PENDING, 0)}
        back = stack.enter_context(
            running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer-1.log")
        )
        assert back.poll() is None
        assert wait_for(lambda: health_status(address) == SERVING)
        back_at = dt.datetime.now(dt.UTC)
        # The notices are sealed, dated at their hand-off (before the signer came
        # back), and the proofs go, each message exactly once: within a few
        # health checks of its return, not after the pause or a retry delay.
        assert wait_for(r.all_sent, timeout=60), r.log(0)
        assert wait_for(
            lambda: {letter.state for letter in r.letters()} == {LetterState.NOTIFIED}, 60
        ), r.log(0)
        caught_up_s = (dt.datetime.now(dt.UTC) - back_at).total_seconds()
        assert caught_up_s < SIGNER_PAUSE.total_seconds(), caught_up_s
        _check_letters_notified_at_hand_off(r)
        assert all(row.sent_time is not None and row.sent_time < back_at for row in notices)
        received = r.received()
        assert set(received) == {_message_id(row) for row in r.rows()}
        assert set(received.values()) == {1}, received
        assert _sample(url, "lre_notifications_resent_total") == 0
        assert _sample(url, "lre_notices_sealed_late_total") == LETTERS
        assert process.poll() is None
        # The log, replayed, accepts notices sealed after their hand-off.
        assert wait_for(r.sequenced, timeout=30)
        checked = subprocess.run(
            [str(BIN / "lre-server"), "verify-log"],
            env={
                **os.environ,
                "LRE_SERVER_DATABASE_URL": database_url,
                "LRE_SERVER_SECRETS_KEY_FILE": str(tmp_path / "server.key"),
                "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(dev_var.pki / "root-ca.pem"),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
        assert "PROBLEM" not in checked.stdout
    print(
        f"\nsigner outage: {outage_s} s; caught up {caught_up_s:.1f} s after its return;"
        f" whole test {time.monotonic() - started:.1f} s"
    )


@pytest.mark.postgres
def test_database_connections_cut_mid_dispatch_every_message_once(
    signer_process: SignerProcess, tmp_path: Path, postgres_database: str
) -> None:
    started = time.monotonic()
    name = make_url(postgres_database).database
    cuts = 3
    with rig(signer_process, tmp_path, postgres_database, slow_s=0.05) as r:
        r.deposit(30)
        with r.worker(0) as (process, url):
            for _ in range(cuts):
                before = sum(r.received().values())
                assert wait_for(lambda b=before: sum(r.received().values()) >= b + 6, 60)
                with r.engine.connect() as connection:
                    cut = connection.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": name},
                    ).scalar_one()
                assert cut >= 1
            assert wait_for(r.all_sent, timeout=60), r.log(0)
            assert wait_for(
                lambda: {letter.state for letter in r.letters()} == {LetterState.NOTIFIED}, 60
            ), r.log(0)
            resent = _sample(url, "lre_notifications_resent_total")
            assert process.poll() is None
        rows = r.rows()
        received = r.received()
        # The process lived: what it handed off it recorded (retrying), never resent.
        assert len(rows) > 60 and set(received) == {_message_id(row) for row in rows}
        assert set(received.values()) == {1}, received.most_common(3)
        assert resent == sum(row.resends for row in rows) == 0
        _check_letters_notified_at_hand_off(r)
    print(f"\nconnections cut {cuts} times; whole test {time.monotonic() - started:.1f} s")
