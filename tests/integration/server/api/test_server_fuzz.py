"""Every CustodyService and NotificationService RPC of the real server (its
authorization, its signer) fed random and malformed fields, with and without
a valid session: a proper status code, never UNKNOWN or INTERNAL, no stack
trace, and a refused call changes nothing in the database but the security
journal."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from lre.server import bootstrap
from lre.server.adapters.signer import SignerClient
from lre.server.config import ServerSettings
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import PartyKind
from lre.server.services.identity.sessions import caller_hash
from lre.server.storage import db, models
from lre.v1 import custody_pb2, notification_pb2
from tests.support.databases import rows_per_table, unjournaled
from tests.support.protofuzz import ALLOWED, KNOWN_PARTY, message
from tests.support.signer import SignerProcess

TOKEN = secrets.token_urlsafe(32)
SERVICES = [
    custody_pb2.DESCRIPTOR.services_by_name["CustodyService"],
    notification_pb2.DESCRIPTOR.services_by_name["NotificationService"],
]
METHODS = {f"{s.name}.{m.name}": (s, m) for s in SERVICES for m in s.methods}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, signer_process: SignerProcess
) -> Iterator[tuple[str, Engine]]:
    folder: Path = tmp_path_factory.mktemp("server-fuzz")
    key = folder / "server.key"
    key.write_text(secrets.token_hex(32))
    engine = db.make_engine(f"sqlite:///{folder / 'lre.db'}")
    db.migrate(engine)
    now = dt.datetime.now(dt.UTC)
    with db.sessions(engine).begin() as session:
        session.add(
            models.Party(
                id=KNOWN_PARTY,
                kind=PartyKind.LEGAL_PERSON,
                professional=True,
                company_name="Fuzz SA",
                email="fuzz@example.org",
                create_time=now,
            )
        )
        session.flush()
        session.add(
            models.AuthSession(
                party_id=KNOWN_PARTY,
                token_hash=hashlib.sha256(TOKEN.encode()).digest(),
                caller_hash=caller_hash(""),  # the plaintext port's caller
                level=AssuranceLevel.HIGH,
                factors=["knowledge", "possession"],
                one_time_element=True,
                authenticated_at=now,
                expire_time=now + dt.timedelta(hours=2),
            )
        )
    signer = SignerClient(signer_process.grpc_address)
    server = bootstrap.build(
        ServerSettings(grpc_address="127.0.0.1:0", secrets_key_file=key), engine, signer
    )
    server.process.set_serving(True)
    server.process.start()
    yield f"127.0.0.1:{server.process.port}", engine
    server.process.stop(grace=1)
    signer.close()
    engine.dispose()


def _call(address: str, method: str, kind: tuple[bool, bool], request: Message, token: bool) -> Any:
    metadata = (("authorization", f"Bearer {TOKEN}"),) if token else ()
    same = lambda b: b  # noqa: E731
    payload = request.SerializeToString()
    with grpc.insecure_channel(address) as channel:
        try:
            if kind == (True, False):
                channel.stream_unary(method, same, same)(
                    iter([payload]), metadata=metadata, timeout=10
                )
            elif kind == (False, True):
                for _ in channel.unary_stream(method, same, same)(
                    payload, metadata=metadata, timeout=2
                ):
                    pass
            else:
                channel.unary_unary(method, same, same)(payload, metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            assert "Traceback" not in (exc.details() or "")
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and method.endswith(
                "StreamLetterEvents"
            ):
                return grpc.StatusCode.OK  # a live stream waits for events: our deadline
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("name", sorted(METHODS))
def test_random_requests_get_a_proper_status_and_refusals_change_nothing(
    served: tuple[str, Engine], name: str
) -> None:
    address, engine = served
    service, method = METHODS[name]

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(message(method.input_type), st.booleans())
    def check(request: Message, token: bool) -> None:
        before = rows_per_table(engine)
        code = _call(
            address,
            f"/{service.full_name}/{method.name}",
            (method.client_streaming, method.server_streaming),
            request,
            token,
        )
        assert code in ALLOWED, (name, code, request)
        if code == grpc.StatusCode.OK:
            return
        after = rows_per_table(engine)
        if name == "CustodyService.DepositLetter" and code == grpc.StatusCode.FAILED_PRECONDITION:
            # A refused deposit keeps its proof: the rejected letter, its
            # SubmissionRejection and the log entry; nothing else.
            changed = {t: after[t] - before[t] for t in after if after[t] != before[t]}
            assert changed == {"letters": 1, "evidence": 1, "log_entries": 1}, changed
        else:
            assert unjournaled(after) == unjournaled(before), (name, code, request)

    check()
