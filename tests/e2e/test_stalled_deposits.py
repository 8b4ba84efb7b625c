"""Deposit streams that stall, against the real server process (workers on)
on SQLite and PostgreSQL: while they wait on their clients, another sender
deposits, the outbox worker notifies, unary calls and health checks are
answered at once, and no database session is left "idle in transaction"; the
content waits in a spool of ciphertext. Clients that then cancel or let their
deadline pass leave nothing: no letter, no mailing, no chunk, no spool file,
and no server error."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from lre.client.mailing import mailing_requests
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import deposit_letter, register_company
from tests.support.databases import idle_in_transaction
from tests.support.metrics import grpc_counter, grpc_handled
from tests.support.processes import wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

CHUNK = 256 * 1024
# Sent before the stall: more than a spool keeps in memory (1 MiB), so on disk.
SENT = 5 * CHUNK
MARK = b"PLAINTEXT-MARK-"
CONTENT = (MARK + os.urandom(49)) * (2 * SENT // 64)
DEADLINE_S = 9.0


@pytest.fixture
def server(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> Iterator[ServerProcess]:
    (tmp_path / "spool").mkdir()
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        spool_dir=str(tmp_path / "spool"),
        # Long enough that only the clients end the stalled streams here.
        stream_idle_s="30",
        outbox_interval_s="0.5",
    ) as process:
        yield process
    logs = process.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs
    assert MARK.decode() not in logs


def _spool_files(server: ServerProcess, spool: Path) -> list[Path]:
    """The server's open files in the spool directory (they have no name there)."""
    found = []
    fds = Path(f"/proc/{server.process.pid}/fd")
    for fd in fds.iterdir():
        try:
            if os.readlink(fd).startswith(str(spool)):
                found.append(fd)
        except OSError:
            continue
    return found


def _stalled(first: Any, chunks: list[Any], release: threading.Event) -> Iterator[Any]:
    """The envelope and ``chunks``, then nothing until released."""
    yield first
    yield from chunks
    release.wait(60)


def _letter_stream(recipient: str, request_id: str, chunks: int) -> tuple[Any, list[Any]]:
    envelope = custody_pb2.DepositLetterRequest(
        envelope=custody_pb2.LetterEnvelope(
            request_id=request_id,
            recipient=recipient,
            parts=[
                custody_pb2.ContentPart(
                    filename="a.pdf", media_type="application/pdf", size_bytes=len(CONTENT)
                )
            ],
        )
    )
    return envelope, [
        custody_pb2.DepositLetterRequest(
            chunk=custody_pb2.ContentChunk(part_index=0, data=CONTENT[i * CHUNK : (i + 1) * CHUNK])
        )
        for i in range(chunks)
    ]


def _mailing_stream(recipients: list[str], request_id: str, chunks: int) -> tuple[Any, list[Any]]:
    envelope = custody_pb2.DepositMailingRequest(
        envelope=custody_pb2.MailingEnvelope(
            request_id=request_id,
            reference="AG",
            recipients=[
                custody_pb2.MailingRecipient(recipient=r, letter_reference=f"lot {i}")
                for i, r in enumerate(recipients)
            ],
            parts=[
                custody_pb2.ContentPart(
                    filename="a.pdf", media_type="application/pdf", size_bytes=len(CONTENT)
                )
            ],
        )
    )
    return envelope, [
        custody_pb2.DepositMailingRequest(
            chunk=custody_pb2.ContentChunk(part_index=0, data=CONTENT[i * CHUNK : (i + 1) * CHUNK])
        )
        for i in range(chunks)
    ]


def _rows(database_url: str, query: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text(query)) or 0)
    finally:
        engine.dispose()


def test_stalled_deposits_and_mailings_hold_nothing_and_leave_nothing(
    server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    letter_rpc, mailing_rpc = "/DepositLetter", "/DepositMailing"
    codes = ("Canceled", "DeadlineExceeded", "Internal", "Unknown")
    before = {(m, c): grpc_handled(server, m, c) for m in (letter_rpc, mailing_rpc) for c in codes}
    release = threading.Event()
    try:
        with grpc.insecure_channel(server.address) as channel:
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            custody = custody_pb2_grpc.CustodyServiceStub(channel)
            _, staller = register_company(
                identity, server.enrolment_codes, "st", "Lent SARL", "lent@example.org"
            )
            other, token = register_company(
                identity, server.enrolment_codes, "ot", "Autre SARL", "autre@example.org"
            )
            recipient, _ = register_company(
                identity, server.enrolment_codes, "rc", "Dest SA", "courrier@dest.example"
            )
            bearer = (("authorization", f"Bearer {staller}"),)
            received = {
                m: grpc_counter(server, "msg_received", m) for m in (letter_rpc, mailing_rpc)
            }
            # Two that the client will cancel (content in the spool, on disk),
            # two whose deadline will pass (envelope and a chunk, or the envelope only).
            cancelled: list[Any] = [
                custody.DepositLetter.future(
                    _stalled(*_letter_stream(recipient, "stall-1", 5), release), metadata=bearer
                ),
                custody.DepositMailing.future(
                    _stalled(*_mailing_stream([recipient, other], "stall-2", 5), release),
                    metadata=bearer,
                ),
            ]
            started = time.monotonic()
            timed_out: list[Any] = [
                custody.DepositLetter.future(
                    _stalled(*_letter_stream(recipient, "stall-3", 1), release),
                    metadata=bearer,
                    timeout=DEADLINE_S,
                ),
                custody.DepositMailing.future(
                    _stalled(*_mailing_stream([recipient], "stall-4", 0), release),
                    metadata=bearer,
                    timeout=DEADLINE_S,
                ),
            ]
            assert wait_for(
                lambda: (
                    grpc_counter(server, "msg_received", letter_rpc) == received[letter_rpc] + 8
                    and grpc_counter(server, "msg_received", mailing_rpc)
                    == received[mailing_rpc] + 7
                ),
                timeout=10,
            )
            assert wait_for(lambda: len(_spool_files(server, spool)) == 2, timeout=5)
            # The spool holds ciphertext only.
            for fd in _spool_files(server, spool):
                assert MARK not in fd.read_bytes()
            if database_url.startswith("postgresql"):
                assert idle_in_transaction(database_url, older_than_s=1) == 0
            # Meanwhile: health and a unary call answered at once.
            for _ in range(5):
                asked = time.monotonic()
                assert health_status(server.address, "lre.v1.CustodyService", timeout=1) == SERVING
                assert time.monotonic() - asked < 0.5
            asked = time.monotonic()
            party = identity.GetParty(identity_pb2.GetPartyRequest(name=other), timeout=5)
            assert party.name == other and time.monotonic() - asked < 0.5
            # Another sender deposits a letter and a mailing (on SQLite too:
            # nothing holds the write lock), and the outbox worker notifies.
            asked = time.monotonic()
            letter = deposit_letter(custody, token, recipient, "other-1")
            mailing = custody.DepositMailing(
                mailing_requests(
                    "other-2", "AG", [(recipient, "lot 1")], [("a.pdf", "application/pdf", b"x")]
                ),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
            assert time.monotonic() - asked < 3
            assert wait_for(
                lambda: (
                    custody.GetLetter(
                        custody_pb2.GetLetterRequest(name=letter.name),
                        metadata=(("authorization", f"Bearer {token}"),),
                    ).state
                    == common_pb2.LETTER_STATE_NOTIFIED
                ),
                timeout=8,
            )
            if database_url.startswith("postgresql"):
                assert idle_in_transaction(database_url, older_than_s=1) == 0
            # Still stalled all along.
            assert not any(f.done() for f in [*cancelled, *timed_out])
            assert time.monotonic() - started < DEADLINE_S
            for future in cancelled:
                future.cancel()
            assert wait_for(lambda: all(f.done() for f in timed_out), timeout=DEADLINE_S + 5)
            for future in timed_out:
                assert future.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
    for method in (letter_rpc, mailing_rpc):
        assert wait_for(
            lambda method=method: (
                grpc_handled(server, method, "Canceled") == before[(method, "Canceled")] + 1
            )
        ), method
        assert wait_for(
            lambda method=method: (
                grpc_handled(server, method, "DeadlineExceeded")
                == before[(method, "DeadlineExceeded")] + 1
            )
        ), method
        for code in ("Internal", "Unknown"):
            assert grpc_handled(server, method, code) == before[(method, code)], (method, code)
    # Nothing of the stalled deposits anywhere, and no spool file left.
    assert wait_for(lambda: not _spool_files(server, spool), timeout=5)
    assert list(spool.iterdir()) == []
    assert _rows(database_url, "SELECT count(*) FROM letters WHERE request_id LIKE 'stall-%'") == 0
    assert _rows(database_url, "SELECT count(*) FROM mailings WHERE request_id LIKE 'stall-%'") == 0
    assert (
        _rows(
            database_url,
            "SELECT count(*) FROM content_chunks WHERE letter_id NOT IN "
            "(SELECT id FROM letters WHERE request_id = 'other-1')",
        )
        == 0
    )
    assert _rows(database_url, "SELECT count(*) FROM mailing_chunks") == 1
    assert mailing.name
    lines = [
        line
        for line in server.log.read_text().splitlines()
        if "DepositLetter" in line or "DepositMailing" in line
    ]
    for code in ("CANCELLED", "DEADLINE_EXCEEDED"):
        found = [line for line in lines if f'"code": "{code}"' in line]
        assert len(found) == 2 and all('"level": "info"' in line for line in found), found


def _dripping(first: Any, chunk: Any, stop: threading.Event) -> Iterator[Any]:
    """The envelope, then ``chunk`` every 0.3 s: never idle, never done."""
    yield first
    while not stop.wait(0.3):
        yield chunk


def test_a_stream_that_never_ends_is_cut_at_the_total_limit_and_leaves_nothing(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        run_workers="false",
        spool_dir=str(spool),
        stream_idle_s="2",
        stream_total_s="4",
    ) as server:
        stop = threading.Event()
        try:
            with grpc.insecure_channel(server.address) as channel:
                identity = identity_pb2_grpc.IdentityServiceStub(channel)
                custody = custody_pb2_grpc.CustodyServiceStub(channel)
                _, token = register_company(
                    identity, server.enrolment_codes, "dr", "Goutte SARL", "goutte@example.org"
                )
                recipient, _ = register_company(
                    identity, server.enrolment_codes, "dd", "Dest SA", "courrier@dest.example"
                )
                bearer = (("authorization", f"Bearer {token}"),)
                letter_first, _ = _letter_stream(recipient, "drip-1", 0)
                mailing_first, _ = _mailing_stream([recipient], "drip-2", 0)
                # Small: the declared size is far from reached when the limit falls.
                drop = custody_pb2.ContentChunk(part_index=0, data=b"x" * 1024)
                started = time.monotonic()
                futures: list[Any] = [
                    custody.DepositLetter.future(
                        _dripping(letter_first, custody_pb2.DepositLetterRequest(chunk=drop), stop),
                        metadata=bearer,
                    ),
                    custody.DepositMailing.future(
                        _dripping(
                            mailing_first, custody_pb2.DepositMailingRequest(chunk=drop), stop
                        ),
                        metadata=bearer,
                    ),
                ]
                assert wait_for(lambda: all(f.done() for f in futures), timeout=15)
                took = time.monotonic() - started
                # Cut at the total limit (4 s), not at the idle one (2 s).
                assert 3.5 < took < 8, took
                assert [f.code() for f in futures] == [grpc.StatusCode.CANCELLED] * 2
        finally:
            stop.set()
        assert wait_for(lambda: not _spool_files(server, spool), timeout=5)
        assert list(spool.iterdir()) == []
        for method in ("/DepositLetter", "/DepositMailing"):
            assert wait_for(lambda method=method: grpc_handled(server, method, "Canceled") == 1)
            assert grpc_handled(server, method, "Internal") == 0
    for query in (
        "SELECT count(*) FROM letters",
        "SELECT count(*) FROM mailings",
        "SELECT count(*) FROM content_chunks",
        "SELECT count(*) FROM mailing_chunks",
    ):
        assert _rows(database_url, query) == 0, query
    lines = [
        line
        for line in server.log.read_text().splitlines()
        if "the stream took too long" in line and '"code": "CANCELLED"' in line
    ]
    assert len(lines) == 2 and all('"level": "info"' in line for line in lines), lines
    logs = server.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs
