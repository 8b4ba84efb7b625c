"""The one error contract, against the real server process on SQLite and
PostgreSQL: undecodable and invalid requests, clients that cancel or run out
of time, and clients that stall their deposits, each with its status code,
the field named, the metric counted, nothing personal in the logs, and the
other callers served meanwhile."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    signing_pb2,
)
from tests.support.clients import deposit_letter, register_company
from tests.support.databases import idle_in_transaction
from tests.support.metrics import grpc_counter, grpc_handled
from tests.support.processes import wait_for
from tests.support.rpc import SERVING, error_info, field_violations, health_status
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

IDLE_S = 3.0
PER_CALLER = 4
MALFORMED = b"\x0a\xff\xff\xff"  # field 1, length-delimited, a length past the end
SERVICES = [
    d.services_by_name[name]
    for d, name in (
        (custody_pb2.DESCRIPTOR, "CustodyService"),
        (identity_pb2.DESCRIPTOR, "IdentityService"),
        (notification_pb2.DESCRIPTOR, "NotificationService"),
    )
]
# Personal data sent in the refused requests below: none may reach a log line.
PERSONAL = ("Zoeprivate", "Dupontprivate", "victim@example.org", "Rue-Secrete", "Y" * 201)


@pytest.fixture
def server(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> Iterator[ServerProcess]:
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        run_workers="false",
        stream_idle_s=str(IDLE_S),
        stream_total_s="60",
        streams_per_caller=str(PER_CALLER),
    ) as process:
        yield process
    logs = process.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs
    assert not [p for p in PERSONAL if p in logs]


def _raw(
    channel: grpc.Channel,
    method: str,
    streams: tuple[bool, bool],
    messages: list[bytes],
    token: str,
) -> None:
    """Sends ``messages`` as they are (no encoding) to ``method``."""
    same = lambda b: b  # noqa: E731
    bearer = (("authorization", f"Bearer {token}"),)
    if streams == (True, False):
        channel.stream_unary(method, same, same)(iter(messages), timeout=10, metadata=bearer)
    elif streams == (False, True):
        list(channel.unary_stream(method, same, same)(messages[0], timeout=10, metadata=bearer))
    else:
        channel.unary_unary(method, same, same)(messages[0], timeout=10, metadata=bearer)


def test_undecodable_requests_to_every_rpc_are_invalid_argument_and_counted(
    server: ServerProcess,
) -> None:
    methods = [
        (f"/{s.full_name}/{m.name}", (m.client_streaming, m.server_streaming))
        for s in SERVICES
        for m in s.methods
    ]
    before = {name: grpc_handled(server, name, "InvalidArgument") for name, _ in methods}
    envelope = custody_pb2.DepositLetterRequest(
        envelope=custody_pb2.LetterEnvelope(request_id="x")
    ).SerializeToString()
    with grpc.insecure_channel(server.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        _, token = register_company(
            identity, server.enrolment_codes, "m", "Bailleur SARL", "gestion@bailleur.example"
        )
        for name, streams in methods:
            with pytest.raises(grpc.RpcError) as raised:
                _raw(channel, name, streams, [MALFORMED], token)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert raised.value.details() == "the request message is malformed", name
            assert error_info(raised.value) == ("MALFORMED_REQUEST", {}), name
        # Inside a deposit stream, after a good envelope.
        with pytest.raises(grpc.RpcError) as raised:
            _raw(
                channel,
                "/lre.v1.CustodyService/DepositLetter",
                (True, False),
                [envelope, MALFORMED],
                token,
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for name, _ in methods:
        assert grpc_handled(server, name, "InvalidArgument") >= before[name] + 1, name
    for name, _ in methods:
        assert grpc_handled(server, name, "Internal") == 0, name


def test_strings_are_checked_at_the_edge_on_every_database(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)

        def create(request_id: str = "p-1", **fields: Any) -> identity_pb2.Party:
            party: dict[str, Any] = {
                "kind": identity_pb2.PARTY_KIND_NATURAL_PERSON,
                "given_name": "Zoe",
                "family_name": "Dupont",
                "email": "zoe@example.org",
                **fields,
            }
            return identity.CreateParty(
                identity_pb2.CreatePartyRequest(
                    request_id=request_id, party=identity_pb2.Party(**party)
                ),
                timeout=10,
            )

        address = common_pb2.PostalAddress(lines=["1 Rue-Secrete"], locality="Paris")
        refused = {
            "party.given_name": {"given_name": "Zoeprivate\x00"},
            "party.family_name": {"family_name": "Dupontprivate\r\nX-Injected: 1"},
            "party.company_name": {"company_name": "\x00"},
            "party.email": {"email": "root,victim@example.org"},
            "party.postal_address.lines[1]": {
                "postal_address": common_pb2.PostalAddress(lines=["ok", "Rue-Secrete\x00"])
            },
        }
        before = grpc_handled(server, "/CreateParty", "InvalidArgument")
        for field, values in refused.items():
            with pytest.raises(grpc.RpcError) as raised:
                create(**values)  # type: ignore[arg-type]
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in field_violations(raised.value), (field, field_violations(raised.value))
            assert error_info(raised.value) == ("INVALID_FIELD", {"field": field})
        with pytest.raises(grpc.RpcError) as raised:
            create(given_name="Y" * 201)
        assert field_violations(raised.value) == {"party.given_name": "at most 200 characters"}
        with pytest.raises(grpc.RpcError) as raised:
            create(request_id="r\x00")
        assert field_violations(raised.value) == {
            "request_id": "must not contain control characters"
        }
        assert grpc_handled(server, "/CreateParty", "InvalidArgument") == before + len(refused) + 2
        assert grpc_handled(server, "/CreateParty", "Internal") == 0
        # The longest name the column holds is stored, on PostgreSQL too.
        stored = create(given_name="Z" * 200, postal_address=address)
        assert stored.given_name == "Z" * 200
        # A deposit's envelope: the field path goes through the oneof and the list.
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        _, token = register_company(
            identity, server.enrolment_codes, "s", "Bailleur SARL", "gestion@bailleur.example"
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "r", "Dest SA", "courrier@dest.example"
        )
        with pytest.raises(grpc.RpcError) as raised:
            deposit_letter(
                custody, token, recipient, "d-1", [("a\x00.pdf", "application/pdf", b"x")]
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(raised.value) == {
            "envelope.parts[0].filename": "must not contain control characters"
        }


def _stalled(
    first: custody_pb2.DepositLetterRequest, release: threading.Event
) -> Iterator[custody_pb2.DepositLetterRequest]:
    """A deposit that sends its envelope and then nothing until released."""
    yield first
    release.wait(60)


def _envelope(recipient: str, request_id: str) -> custody_pb2.DepositLetterRequest:
    return custody_pb2.DepositLetterRequest(
        envelope=custody_pb2.LetterEnvelope(
            request_id=request_id,
            recipient=recipient,
            parts=[
                custody_pb2.ContentPart(
                    filename="a.pdf", media_type="application/pdf", size_bytes=10
                )
            ],
        )
    )


def test_clients_that_cancel_or_run_out_of_time_are_not_server_errors(
    server: ServerProcess,
) -> None:
    deposit = "CustodyService/DepositLetter"
    before = {
        c: grpc_handled(server, deposit, c) for c in ("Canceled", "DeadlineExceeded", "Internal")
    }
    release = threading.Event()
    with grpc.insecure_channel(server.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        _, token = register_company(
            identity, server.enrolment_codes, "cs", "Bailleur SARL", "gestion@bailleur.example"
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "cr", "Dest SA", "courrier@dest.example"
        )
        bearer = (("authorization", f"Bearer {token}"),)
        started = grpc_counter(server, "started", deposit)
        future = custody.DepositLetter.future(
            _stalled(_envelope(recipient, "c-1"), release), metadata=bearer
        )
        assert wait_for(lambda: grpc_counter(server, "started", deposit) == started + 1)
        time.sleep(0.5)  # the envelope is in, the server waits for content
        future.cancel()
        with pytest.raises(grpc.RpcError) as raised:
            custody.DepositLetter(
                _stalled(_envelope(recipient, "c-2"), release), metadata=bearer, timeout=1
            )
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        release.set()
        assert wait_for(lambda: grpc_handled(server, deposit, "Canceled") == before["Canceled"] + 1)
        assert wait_for(
            lambda: (
                grpc_handled(server, deposit, "DeadlineExceeded") == before["DeadlineExceeded"] + 1
            )
        )
        # Nothing was held: the same deposits go through now.
        assert deposit_letter(custody, token, recipient, "c-3").name
    assert grpc_handled(server, deposit, "Internal") == before["Internal"]
    lines = [line for line in server.log.read_text().splitlines() if "DepositLetter" in line]
    assert any('"code": "CANCELLED"' in line and '"level": "info"' in line for line in lines)
    assert any('"code": "DEADLINE_EXCEEDED"' in line for line in lines)


def test_twenty_stalled_deposits_hold_neither_threads_nor_the_database(
    server: ServerProcess, database_url: str
) -> None:
    release = threading.Event()
    with grpc.insecure_channel(server.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender, token = register_company(
            identity, server.enrolment_codes, "ts", "Bailleur SARL", "gestion@bailleur.example"
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "tr", "Dest SA", "courrier@dest.example"
        )
        bearer = (("authorization", f"Bearer {token}"),)
        before = grpc_handled(server, "/DepositLetter", "ResourceExhausted")
        start = time.monotonic()
        futures = [
            custody.DepositLetter.future(
                _stalled(_envelope(recipient, f"t-{i}"), release), metadata=bearer, timeout=60
            )
            for i in range(20)
        ]
        assert wait_for(lambda: sum(f.done() for f in futures) == 20 - PER_CALLER, timeout=10)
        refused = [f for f in futures if f.done()]
        assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert (
            grpc_handled(server, "/DepositLetter", "ResourceExhausted") == before + 20 - PER_CALLER
        )
        # Meanwhile: health checks answered at once, while the streams stall.
        slowest_health = 0.0
        while time.monotonic() - start < IDLE_S - 0.5:
            asked = time.monotonic()
            assert health_status(server.address, "lre.v1.CustodyService", timeout=1) == SERVING
            slowest_health = max(slowest_health, time.monotonic() - asked)
        assert slowest_health < 0.5, slowest_health
        held = (
            idle_in_transaction(database_url, older_than_s=1)
            if database_url.startswith("postgresql")
            else None
        )
        # A unary call that reads the database: a stalled deposit holds no
        # transaction (PostgreSQL) and no write lock (SQLite), only its thread
        # (another deposit meanwhile: tests/e2e/test_stalled_deposits.py).
        asked = time.monotonic()
        party = identity.GetParty(identity_pb2.GetPartyRequest(name=sender), timeout=30)
        assert party.name == sender
        assert time.monotonic() - asked < 0.5
        assert held in (None, 0), held
        # The idle limit ends every stalled stream and frees what it held.
        assert wait_for(lambda: all(f.done() for f in futures), timeout=IDLE_S + 10)
        stalled = [f for f in futures if f not in refused]
        assert {f.code() for f in stalled} == {grpc.StatusCode.CANCELLED}
        release.set()
        asked = time.monotonic()
        assert deposit_letter(custody, token, recipient, "t-after").name
        assert time.monotonic() - asked < 5
    assert grpc_handled(server, "/DepositLetter", "Internal") == 0


def test_the_signer_port_keeps_the_same_contract(signer_process: SignerProcess) -> None:
    service = signing_pb2.DESCRIPTOR.services_by_name["SigningService"]
    metrics = f"{signer_process.http_url}/metrics"

    def invalid(method: str) -> float:
        with urllib.request.urlopen(metrics, timeout=5) as reply:
            for family in text_string_to_metric_families(reply.read().decode()):
                for sample in family.samples:
                    if (
                        sample.name == "grpc_server_handled_total"
                        and sample.labels["grpc_method"] == method
                        and sample.labels["grpc_code"] == "InvalidArgument"
                    ):
                        return sample.value
        return 0.0

    before = {m.name: invalid(m.name) for m in service.methods}
    same = lambda b: b  # noqa: E731
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        for method in service.methods:
            call = channel.unary_unary(f"/{service.full_name}/{method.name}", same, same)
            with pytest.raises(grpc.RpcError) as raised:
                call(MALFORMED, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method.name
    for method in service.methods:
        assert invalid(method.name) == before[method.name] + 1, method.name
    logs = signer_process.log.read_text()
    assert "Traceback" not in logs and "Exception deserializing" not in logs
