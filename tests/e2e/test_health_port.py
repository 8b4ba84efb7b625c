"""The health-only port (`health_address`) and `lre-client health`, the exec
probe over mutual TLS, against the real server and signer."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.protobuf import symbol_database
from grpc_health.v1 import health_pb2

from lre.dev.tls import TlsFiles
from lre.signer.devsetup import DevPaths
from lre.v1 import custody_pb2, identity_pb2, notification_pb2, signing_pb2
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import NOT_SERVING, SERVING, health_status
from tests.support.server import server_process
from tests.support.signer import SignerProcess, signer_env

CUSTODY, SIGNING = "lre.v1.CustodyService", "lre.v1.SigningService"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def _methods(*files: object) -> list[tuple[str, object]]:
    """Every RPC of these proto files, with its request type."""
    found: list[tuple[str, object]] = []
    for file in files:
        for service in file.DESCRIPTOR.services_by_name.values():  # type: ignore[attr-defined]
            for method in service.methods:
                request = symbol_database.Default().GetSymbol(method.input_type.full_name)
                found.append((f"/{service.full_name}/{method.name}", request))
    return found


def _code(channel: grpc.Channel, method: str, request: bytes, streaming: bool = False) -> str:
    same = lambda b: b  # noqa: E731
    try:
        if streaming:
            list(channel.stream_stream(method, same, same)(iter([request]), timeout=5))
        else:
            channel.unary_unary(method, same, same)(request, timeout=5)
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


def _only_health(address: str, methods: list[tuple[str, object]]) -> None:
    """Health answers on ``address`` in plaintext; reflection and every
    method of the services do not exist there."""
    with grpc.insecure_channel(address) as channel:
        assert _code(channel, REFLECTION, b"", streaming=True) == "UNIMPLEMENTED"
        for method, request in methods:
            message = request().SerializeToString()  # type: ignore[operator]
            for streaming in (False, True):
                assert _code(channel, method, message, streaming) == "UNIMPLEMENTED", method


def probe(address: str, tls: TlsFiles | None, caller: str | None, *args: str) -> int:
    flags = []
    if tls is not None:
        flags = [f"--ca-file={tls.ca}", "--server-name=localhost"]
        if caller is not None:
            flags += [
                f"--cert-file={tls.client_cert(caller)}",
                f"--key-file={tls.client_key(caller)}",
            ]
    done = subprocess.run(
        [str(BIN / "lre-client"), "health", address, *flags, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Traceback" not in done.stderr
    return done.returncode


def test_server_health_port_and_probe(
    signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    health_port = free_port()
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        tls=tls,
        run_workers="false",
        health_address=f"127.0.0.1:{health_port}",
    ) as server:
        health = f"127.0.0.1:{health_port}"
        # The kubelet's probe: plaintext, no certificate; the process and each service.
        assert health_status(health) == SERVING
        assert health_status(health, CUSTODY) == SERVING
        unknown = None
        with grpc.insecure_channel(health) as channel:
            try:
                channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    health_pb2.HealthCheckRequest.SerializeToString,
                    health_pb2.HealthCheckResponse.FromString,
                )(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
            except grpc.RpcError as exc:
                unknown = exc.code()
        assert unknown == grpc.StatusCode.NOT_FOUND
        _only_health(health, _methods(identity_pb2, custody_pb2, notification_pb2))
        # The main port still takes only mutual TLS.
        assert health_status(server.address) is None

        # `lre-client health` over mutual TLS: 0 when SERVING, 1 otherwise.
        assert probe(server.address, tls, "operator", f"--service={CUSTODY}") == 0
        assert probe(server.address, tls, "operator") == 0
        assert probe(server.address, tls, "operator", "--service=no.such.Service") == 1
        assert probe(server.address, tls, None, f"--service={CUSTODY}") == 1  # no certificate
        assert probe(server.address, None, None) == 1  # plaintext to a TLS port
        assert probe(health, None, None, f"--service={CUSTODY}") == 0
        assert probe(f"127.0.0.1:{free_port()}", None, None, "--timeout=0.5") == 1

        # SIGTERM: both ports say NOT_SERVING while draining.
        server.process.terminate()
        assert wait_for(lambda: health_status(health, CUSTODY) == NOT_SERVING, timeout=2)


@contextlib.contextmanager
def _signer(
    dev_var: DevPaths, tls: TlsFiles, tmp_path: Path, **env: str
) -> Iterator[tuple[str, str]]:
    grpc_port, http_port, health_port = free_port(), free_port(), free_port()
    settings = {
        "LRE_SIGNER_TLS_CERT_FILE": str(tls.service_cert),
        "LRE_SIGNER_TLS_KEY_FILE": str(tls.service_key),
        "LRE_SIGNER_TLS_CLIENT_CA_FILE": str(tls.ca),
        "LRE_SIGNER_REQUIRE_TLS": "true",
        "LRE_SIGNER_HEALTH_ADDRESS": f"127.0.0.1:{health_port}",
        **env,
    }
    log = tmp_path / "signer.log"
    with running(
        [str(BIN / "lre-signer"), "serve"],
        signer_env(dev_var, grpc_port, http_port, **settings),
        log,
    ):
        health = f"127.0.0.1:{health_port}"
        assert wait_for(lambda: health_status(health) == SERVING), log.read_text()
        yield f"127.0.0.1:{grpc_port}", health


def test_signer_health_port_and_probe_with_any_certificate_of_the_ca(
    dev_var: DevPaths, tls: TlsFiles, tmp_path: Path
) -> None:
    with _signer(dev_var, tls, tmp_path) as (address, health):
        assert wait_for(lambda: health_status(health, SIGNING) == SERVING)
        _only_health(health, _methods(signing_pb2))
        # The probe presents its pod's certificate, which may call nothing of the
        # signer: health answers it all the same.
        assert probe(address, tls, "sender-gateway", f"--service={SIGNING}") == 0
        assert probe(address, tls, None, f"--service={SIGNING}") == 1


def test_signer_liveness_does_not_follow_the_token(
    dev_var: DevPaths, tls: TlsFiles, tmp_path: Path
) -> None:
    pin = tmp_path / "pin"
    pin.write_text("not-the-pin\n")
    with _signer(dev_var, tls, tmp_path, LRE_SIGNER_PIN_FILE=str(pin)) as (address, health):
        assert health_status(health, SIGNING) == NOT_SERVING
        assert probe(address, tls, "sender-gateway", f"--service={SIGNING}") == 1
        assert probe(address, tls, "sender-gateway") == 0  # alive: a restart would not help
