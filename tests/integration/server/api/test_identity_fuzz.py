"""Every IdentityService RPC fed random and malformed fields answers with a
proper status code, never UNKNOWN or INTERNAL, and a refused call changes
nothing in the database but the security journal (a refused login, code
request, enrolment or proof is journaled)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from lre.runtime.serving import GrpcProcess, ServiceBinding
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.api.identity import IdentityServicer
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.storage import db, models
from lre.server.storage.store import Stores
from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.databases import rows_per_table, unjournaled
from tests.support.protofuzz import ALLOWED, KNOWN_PARTY, call_raw, message

SERVICE = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "lre.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    with db.sessions(engine).begin() as session:
        session.add(
            models.Party(
                id=KNOWN_PARTY,
                kind=PartyKind.NATURAL_PERSON,
                professional=False,
                given_name="A",
                family_name="B",
                email="a@example.org",
                create_time=dt.datetime.now(dt.UTC),
            )
        )
    service = IdentityService(
        Stores(db.sessions(engine)), IdentityPolicy(secrets_key=SecretsKeys(bytes(32)))
    )
    binding = ServiceBinding(
        SERVICE.full_name,
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(service),  # type: ignore[abstract]
    )
    process = GrpcProcess([binding], "127.0.0.1:0", max_workers=4, log_rpcs=False)
    process.start()
    yield f"127.0.0.1:{process.port}", engine
    process.stop(grace=1)
    engine.dispose()


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_random_requests_get_a_proper_status_and_refusals_change_nothing(
    served: tuple[str, Engine], method: str
) -> None:
    address, engine = served
    method_desc = SERVICE.methods_by_name[method]

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(message(method_desc.input_type))
    def check(request: Message) -> None:
        before = rows_per_table(engine)
        code = call_raw(address, f"/{SERVICE.full_name}/{method}", request)
        assert code in ALLOWED, (method, code, request)
        if code != grpc.StatusCode.OK:
            assert unjournaled(rows_per_table(engine)) == unjournaled(before), (
                method,
                code,
                request,
            )

    check()
