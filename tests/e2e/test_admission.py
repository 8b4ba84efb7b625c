"""The admission gate against the real server and signer over mutual TLS, on
SQLite and PostgreSQL: reflection streams that ask once and stay open,
health Watch streams, stalled deposits and unary calls whose request never
comes, all at once from certificates of the transport CA; meanwhile unary
calls and health checks keep answering within a second (p99), the abuse is
refused with RESOURCE_EXHAUSTED (counted by role and method, logged), and
what was admitted is cut at its idle or total limit."""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from lre.dev.tls import TlsFiles
from lre.signer.devsetup import DevPaths
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.support.clients import register_company
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, channel, health_status
from tests.support.server import server_process
from tests.support.signer import SignerProcess, signer_env

REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
IDLE_S = 6.0
WATCH_TOTAL_S = 4.0
# How long the abuse is held while the others are measured.
ABUSE_S = 4.0


def _samples(url: str, ca: Path) -> list[tuple[str, dict[str, str], float]]:
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(
        url.replace("http://", "https://"), timeout=5, context=context
    ) as r:
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(r.read().decode())
            for s in family.samples
        ]


def _metric(url: str, ca: Path, name: str, **labels: str) -> float:
    return sum(
        value
        for sample, found, value in _samples(url, ca)
        if sample == name and all(found.get(k) == v for k, v in labels.items())
    )


def _held(release: threading.Event, first: Any | None = None) -> Iterator[Any]:
    """A request stream that sends ``first`` (if any) then nothing until released."""
    if first is not None:
        yield first
    release.wait(60)


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _measure(calls: dict[str, Callable[[], None]], seconds: float) -> dict[str, list[float]]:
    """Each call in turn, again and again for ``seconds``: its latencies."""
    found: dict[str, list[float]] = {name: [] for name in calls}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, call in calls.items():
            asked = time.monotonic()
            call()
            found[name].append(time.monotonic() - asked)
            time.sleep(0.02)
    return found


def _code(future: Any) -> grpc.StatusCode | None:
    return future.code() if future.done() else None


def test_reflection_watches_and_stalls_cannot_take_the_server(
    database_url: str, signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        tls=tls,
        run_workers="false",
        reflection="true",
        grpc_threads="12",
        reserved_threads="4",
        streams_per_caller="4",
        streams_per_user="2",
        reflection_streams="2",
        watch_streams="2",
        stream_idle_s=str(IDLE_S),
        watch_total_s=str(WATCH_TOTAL_S),
    ) as server:
        metrics, ca = server.metrics_url, tls.ca
        refused_before = _metric(metrics, ca, "lre_rpc_refused_total")
        release = threading.Event()
        with contextlib.ExitStack() as stack:
            auditor = stack.enter_context(channel(server.address, tls, "auditor"))
            gateway = stack.enter_context(channel(server.address, tls, "sender-gateway"))
            operator = stack.enter_context(channel(server.address, tls, "operator"))
            identity = identity_pb2_grpc.IdentityServiceStub(gateway)
            staff = identity_pb2_grpc.IdentityServiceStub(operator)
            codes = server.enrolment_codes
            _, greedy_token = register_company(
                identity, codes, "g", "Greedy SARL", "g@example.org", staff
            )
            _, other_token = register_company(
                identity, codes, "o", "Other SARL", "o@example.org", staff
            )
            try:
                # 24 reflection streams that ask once and stay open.
                ask = reflection_pb2.ServerReflectionRequest(list_services="")
                reflections = [
                    reflection_pb2_grpc.ServerReflectionStub(auditor).ServerReflectionInfo(
                        _held(release, ask), timeout=60
                    )
                    for _ in range(24)
                ]
                # 8 health watchers.
                watches = [
                    health_pb2_grpc.HealthStub(auditor).Watch(
                        health_pb2.HealthCheckRequest(service=""), timeout=60
                    )
                    for _ in range(8)
                ]
                # One sender's 8 stalled deposits, then another sender's one.
                deposit = custody_pb2_grpc.CustodyServiceStub(gateway).DepositLetter
                greedy = [
                    deposit.future(_held(release), metadata=_bearer(greedy_token), timeout=60)
                    for _ in range(8)
                ]
                assert wait_for(lambda: sum(f.done() for f in greedy) == 6, timeout=10)
                other = deposit.future(_held(release), metadata=_bearer(other_token), timeout=60)
                # Unary calls whose request message never comes.
                get_party = auditor.stream_unary(
                    "/lre.v1.IdentityService/GetParty", lambda b: b, lambda b: b
                )
                stalled = [get_party.future(_held(release), timeout=60) for _ in range(10)]

                tree_head = custody_pb2_grpc.CustodyServiceStub(operator).GetTreeHead
                health = health_pb2_grpc.HealthStub(operator).Check

                def unary() -> None:
                    try:
                        tree_head(custody_pb2.GetTreeHeadRequest(), timeout=5)
                    except grpc.RpcError as exc:  # no head sealed yet: answered all the same
                        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc

                def check() -> None:
                    reply = health(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    assert reply.status == SERVING

                latencies = _measure({"unary": unary, "health": check}, ABUSE_S)
                for name, found in latencies.items():
                    assert len(found) >= 10 and _p99(found) < 1.0, (name, sorted(found)[-5:])

                # What was refused, and what still holds a thread.
                assert [_code(f) for f in reflections].count(
                    grpc.StatusCode.RESOURCE_EXHAUSTED
                ) == 22
                assert [_code(f) for f in watches].count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 6
                assert {_code(f) for f in greedy if f.done()} == {
                    grpc.StatusCode.RESOURCE_EXHAUSTED
                }
                assert not other.done()  # another sender is admitted meanwhile
                assert wait_for(lambda: sum(f.done() for f in stalled) >= 9, timeout=5)
            finally:
                release.set()
        refused = {
            (labels["role"], labels["grpc_method"], labels["budget"]): value
            for name, labels, value in _samples(metrics, ca)
            if name == "lre_rpc_refused_total"
        }
        assert refused[("auditor", "ServerReflectionInfo", "class")] >= 22
        assert refused[("auditor", "Watch", "class")] >= 6
        assert refused[("sender_gateway", "DepositLetter", "user")] == 6
        assert sum(refused.values()) - refused_before >= 34
        handled = _metric(
            metrics,
            ca,
            "grpc_server_handled_total",
            grpc_method="ServerReflectionInfo",
            grpc_code="ResourceExhausted",
        )
        assert handled == 22
    logs = server.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs
    refusals = [line for line in logs.splitlines() if '"rpc refused"' in line]
    assert any("ServerReflectionInfo" in line and '"role": "auditor"' in line for line in refusals)
    # No caller's name in the refusal lines: role and method only.
    assert not [line for line in refusals if "auditor.lre.internal" in line]


def test_admitted_watch_and_reflection_streams_are_cut_at_their_limits(
    signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        tls=tls,
        run_workers="false",
        reflection="true",
        stream_idle_s="2",
        watch_total_s="2",
    ) as server:
        release = threading.Event()
        with channel(server.address, tls, "auditor") as auditor:
            try:
                ask = reflection_pb2.ServerReflectionRequest(list_services="")
                started = time.monotonic()
                stream = reflection_pb2_grpc.ServerReflectionStub(auditor).ServerReflectionInfo(
                    _held(release, ask), timeout=30
                )
                first = next(stream)
                assert "lre.v1.CustodyService" in {
                    s.name for s in first.list_services_response.service
                }
                watch = health_pb2_grpc.HealthStub(auditor).Watch(
                    health_pb2.HealthCheckRequest(service=""), timeout=30
                )
                assert next(watch).status == SERVING
                for cut in (stream, watch):
                    with pytest.raises(grpc.RpcError) as raised:
                        next(cut)
                    assert raised.value.code() == grpc.StatusCode.CANCELLED
                assert time.monotonic() - started < 10
            finally:
                release.set()


def test_reflection_is_off_unless_configured(
    signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    with (
        server_process(
            signer_process, tmp_path, f"sqlite:///{tmp_path / 'lre.db'}", tls=tls
        ) as server,
        channel(server.address, tls, "auditor") as auditor,
    ):
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as raised:
            list(
                reflection_pb2_grpc.ServerReflectionStub(auditor).ServerReflectionInfo(
                    iter([ask]), timeout=5
                )
            )
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


@contextlib.contextmanager
def _tls_signer(dev_var: DevPaths, tls: TlsFiles, tmp_path: Path) -> Iterator[tuple[str, str]]:
    grpc_port, http_port = free_port(), free_port()
    settings = {
        "LRE_SIGNER_TLS_CERT_FILE": str(tls.service_cert),
        "LRE_SIGNER_TLS_KEY_FILE": str(tls.service_key),
        "LRE_SIGNER_TLS_CLIENT_CA_FILE": str(tls.ca),
        "LRE_SIGNER_REQUIRE_TLS": "true",
        "LRE_SIGNER_REFLECTION": "true",
        "LRE_SIGNER_STREAM_IDLE_S": str(IDLE_S),
    }
    log = tmp_path / "signer.log"
    with running(
        [str(BIN / "lre-signer"), "serve"],
        signer_env(dev_var, grpc_port, http_port, **settings),
        log,
    ):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address, tls=tls, caller="operator") == SERVING), (
            log.read_text()
        )
        yield address, f"https://127.0.0.1:{http_port}/metrics"
    text = log.read_text()
    assert "Traceback" not in text and '"level": "error"' not in text


def test_a_certificate_the_signer_grants_nothing_cannot_hold_its_threads(
    dev_var: DevPaths, tls: TlsFiles, tmp_path: Path
) -> None:
    with _tls_signer(dev_var, tls, tmp_path) as (address, metrics):
        release = threading.Event()
        with (
            channel(address, tls, "sender-gateway") as stranger,
            channel(address, tls, "operator") as operator,
        ):
            try:
                ask = reflection_pb2.ServerReflectionRequest(list_services="")
                streams = [
                    reflection_pb2_grpc.ServerReflectionStub(stranger).ServerReflectionInfo(
                        _held(release, ask), timeout=60
                    )
                    for _ in range(12)
                ]
                chain = signing_pb2_grpc.SigningServiceStub(operator).GetCertificateChain
                health = health_pb2_grpc.HealthStub(operator).Check

                def certificates() -> None:
                    request = signing_pb2.GetCertificateChainRequest(
                        purpose=signing_pb2.KEY_PURPOSE_TIMESTAMPING
                    )
                    assert chain(request, timeout=5).certificates

                def check() -> None:
                    assert health(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING

                latencies = _measure({"chain": certificates, "health": check}, ABUSE_S)
                for name, found in latencies.items():
                    assert len(found) >= 10 and _p99(found) < 1.0, (name, sorted(found)[-5:])
                codes = [_code(f) for f in streams]
                assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 11, codes
            finally:
                release.set()
        refused = _metric(
            metrics,
            tls.ca,
            "lre_rpc_refused_total",
            role="none",
            grpc_method="ServerReflectionInfo",
        )
        assert refused == 11


def _code_of(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_an_operator_denies_a_certificate_without_a_restart(
    signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    denied = tmp_path / "denied-callers.txt"
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        tls=tls,
        run_workers="false",
        denied_callers_file=str(denied),
    ) as server:
        with (
            channel(server.address, tls, "auditor") as auditor,
            channel(server.address, tls, "operator") as operator,
        ):

            def check(conn: grpc.Channel) -> Callable[[], object]:
                return lambda: health_pb2_grpc.HealthStub(conn).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )

            assert _code_of(check(auditor)) == grpc.StatusCode.OK
            denied.write_text("# revoked 2026-12-06\nAUDITOR.lre.internal\n")
            assert wait_for(
                lambda: _code_of(check(auditor)) == grpc.StatusCode.PERMISSION_DENIED, timeout=5
            )
            assert _code_of(check(operator)) == grpc.StatusCode.OK
            # By the certificate's fingerprint, colons and all.
            der = x509.load_pem_x509_certificate(
                tls.client_cert("operator").read_bytes()
            ).public_bytes(serialization.Encoding.DER)
            fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
            denied.write_text(fingerprint + "\n")
            assert wait_for(
                lambda: _code_of(check(operator)) == grpc.StatusCode.PERMISSION_DENIED, timeout=5
            )
            assert wait_for(lambda: _code_of(check(auditor)) == grpc.StatusCode.OK, timeout=5)
            denied.unlink()
            assert wait_for(lambda: _code_of(check(operator)) == grpc.StatusCode.OK, timeout=5)
        refused = _metric(
            server.metrics_url, tls.ca, "lre_rpc_refused_total", budget="denied", role="auditor"
        )
        assert refused >= 1
