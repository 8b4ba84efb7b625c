"""Starting the real processes from tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lre.dev.tls import TlsFiles

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def channel(address: str, tls: TlsFiles | None = None, caller: str | None = None) -> grpc.Channel:
    """Plaintext, or TLS trusting ``tls.ca`` with ``caller``'s client certificate
    (a name of lre.dev.tls, e.g. "operator") when given."""
    if tls is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.client_key(caller).read_bytes() if caller else None,
        certificate_chain=tls.client_cert(caller).read_bytes() if caller else None,
    )
    return grpc.secure_channel(address, credentials)


def health_status(
    address: str,
    service: str = "",
    timeout: float = 2,
    tls: TlsFiles | None = None,
    caller: str | None = None,
) -> int | None:
    with channel(address, tls, caller) as channel_:
        try:
            reply = health_pb2_grpc.HealthStub(channel_).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
        return int(reply.status)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@contextlib.contextmanager
def running(
    command: list[str], env: Mapping[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a process for the block; SIGTERM then SIGKILL on the way out."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)


def ts_verify(
    data: Path, reply: Path, root_ca: Path, tsa_cert: Path, token_in: bool = False
) -> bool:
    """`openssl ts -verify` of a reply (or a bare token) over ``data``."""
    extra = ["-token_in"] if token_in else []
    result = openssl(
        "ts",
        "-verify",
        "-data",
        data,
        "-in",
        reply,
        *extra,
        "-CAfile",
        root_ca,
        "-untrusted",
        tsa_cert,
    )
    return "Verification: OK" in result.stdout


def idle_in_transaction(database_url: str, older_than_s: float = 0.0) -> int:
    """PostgreSQL sessions of this database idle in a transaction begun over
    ``older_than_s`` ago: what a client that stalls would hold for as long as
    it stalls. With workers running, give a second: their own transactions
    (waiting a tenth of a second for a seal) are younger."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = :db AND state LIKE 'idle in transaction%' "
                        "AND xact_start <= now() - make_interval(secs => :age)"
                    ),
                    {"db": url.database, "age": older_than_s},
                )
            )
    finally:
        engine.dispose()
