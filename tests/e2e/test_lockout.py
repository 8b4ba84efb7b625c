"""Lockouts a third party cannot trigger, against the real server over mutual
TLS on SQLite and PostgreSQL: wrong passwords for the recipient's party
through the sender gateway lock the gateway out (RESOURCE_EXHAUSTED with a
RetryInfo that doubles at each lockout), never the recipient, who opens its
session through its portal meanwhile; through the portal, failures count
per end user the portal forwards, so one user cannot lock another out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lre.client.parties import enroll_party, log_in
from lre.dev.tls import TlsFiles, create_dev_tls
from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.rpc import channel
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

THRESHOLD = 3
LOCKOUT_S = 2


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return create_dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(
    database_url: str, signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> Iterator[ServerProcess]:
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        tls=tls,
        run_workers="false",
        lockout_threshold=str(THRESHOLD),
        lockout_s=str(LOCKOUT_S),
    ) as process:
        yield process
    logs = process.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs


def _attempt(
    identity: identity_pb2_grpc.IdentityServiceStub, party: str, end_user: str = ""
) -> tuple[grpc.StatusCode, float | None]:
    """A wrong password for ``party``: the code, and the RetryInfo delay if any."""
    metadata = (("x-lre-end-user", end_user),) if end_user else None
    try:
        identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=party, password="not the password at all", totp_code="000000"
            ),
            metadata=metadata,
            timeout=10,
        )
    except grpc.RpcError as exc:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        for detail in status.details if status else []:
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry):
                return exc.code(), retry.retry_delay.ToTimedelta().total_seconds()
        return exc.code(), None
    raise AssertionError("a wrong password opened a session")


def test_a_gateway_cannot_lock_a_recipient_out_of_its_portal(
    server: ServerProcess, tls: TlsFiles
) -> None:
    with (
        channel(server.address, tls, "sender-gateway") as gateway_channel,
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "operator") as operator_channel,
    ):
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        operator = identity_pb2_grpc.IdentityServiceStub(operator_channel)
        victim = enroll_party(
            portal,
            "victim",
            operator,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
            given_name="Claire",
            family_name="Martin",
            email="claire@example.org",
        )
        # The attacker knows the party id only.
        codes = [_attempt(gateway, victim.name) for _ in range(THRESHOLD + 1)]
        assert [c for c, _ in codes[: THRESHOLD - 1]] == [grpc.StatusCode.UNAUTHENTICATED] * (
            THRESHOLD - 1
        )
        locked, delay = codes[THRESHOLD - 1]
        assert locked == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == LOCKOUT_S
        assert codes[THRESHOLD][0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The recipient, through its own portal, is not locked out.
        assert log_in(portal, victim)

        # Through the portal, failures are counted per end user it forwards.
        for _ in range(THRESHOLD):
            code, delay = _attempt(portal, victim.name, end_user="203.0.113.7")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == LOCKOUT_S
        assert _attempt(portal, victim.name, "198.51.100.2")[0] == grpc.StatusCode.UNAUTHENTICATED

        # The gateway locked out again once its lockout ends: twice as long.
        time.sleep(LOCKOUT_S + 0.5)
        for _ in range(THRESHOLD):
            code, delay = _attempt(gateway, victim.name)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == 2 * LOCKOUT_S
