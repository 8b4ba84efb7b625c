"""Deposit benchmark (issue 5): 10 KB letters deposited end to end (stored,
encrypted, sealed and timestamped by the signer, outbox and charge written)
on PostgreSQL, beside a trivial RPC (grpc.health Check) on the same server,
measured in the same run.

Prints: the saturated deposit rate with p50/p99, the p99 at a fixed offered
rate of 100 letters/s, and the trivial RPC rate. Load: client processes on
127.0.0.1, bounded in time. Usage:
  python bench/deposit_throughput.py [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import load
from lre.client import register_party
from lre.v1 import custody_pb2, identity_pb2, identity_pb2_grpc
from signer.devsetup import dev_setup
from tests.support import BIN, SERVING, free_port, health_status, wait_for

LETTER = os.urandom(10 * 1024)
DEPOSIT = "/lre.v1.CustodyService/DepositLetter"


def _messages(recipient: str) -> list[bytes]:
    envelope = custody_pb2.DepositLetterRequest(
        envelope=custody_pb2.LetterEnvelope(
            request_id=str(uuid.uuid4()),
            recipient=recipient,
            parts=[
                custody_pb2.ContentPart(
                    filename="letter.pdf", media_type="application/pdf", size_bytes=len(LETTER)
                )
            ],
        )
    )
    chunk = custody_pb2.DepositLetterRequest(
        chunk=custody_pb2.ContentChunk(part_index=0, data=LETTER)
    )
    return [envelope.SerializeToString(), chunk.SerializeToString()]


async def _depositor(
    address: str, token: str, recipient: str, seconds: float, concurrency: int, rate: float
) -> list[float]:
    identity = lambda b: b  # noqa: E731
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_unary(
            DEPOSIT, request_serializer=identity, response_deserializer=identity
        )
        deadline = time.perf_counter() + seconds
        interval = concurrency / rate if rate else 0.0

        async def worker() -> None:
            next_start = time.perf_counter()
            while time.perf_counter() < deadline:
                if interval:
                    await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
                    next_start += interval
                start = time.perf_counter()
                await call(
                    iter(_messages(recipient)),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=30,
                )
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _run_depositor(args: tuple[str, str, str, float, int, float]) -> list[float]:
    return asyncio.run(_depositor(*args))


def deposits(
    address: str, token: str, recipient: str, seconds: float, rate: float = 0.0
) -> dict[str, float]:
    clients, concurrency = 2, 8
    per_client_rate = rate / clients if rate else 0.0
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(
            _run_depositor,
            [(address, token, recipient, seconds, concurrency, per_client_rate)] * clients,
        )
        elapsed = time.perf_counter() - start
    latencies = sorted(x for r in results for x in r)
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="lre-bench-"))
    paths = dev_setup(var)
    name = f"lre_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    key = var / "server.key"
    key.write_text(secrets.token_hex(32))
    signer_port, server_port = free_port(), free_port()
    env = {
        **os.environ,
        "LRE_CONFIG": str(paths.config),
        "SOFTHSM2_CONF": str(paths.softhsm_conf.resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_PROCESSES": "2",
        "LRE_SIGNER_LOG_RPCS": "false",
        "LRE_SERVER_DATABASE_URL": database,
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{server_port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_SIGNER_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SERVER_RUN_WORKERS": "false",
        "LRE_SERVER_LOG_LEVEL": "WARNING",
    }
    subprocess.run([str(BIN / "lre-server"), "migrate"], env=env, check=True, capture_output=True)
    processes = [
        subprocess.Popen(
            [str(BIN / "lre-signer"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(BIN / "lre-server"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    address = f"127.0.0.1:{server_port}"
    try:
        assert wait_for(
            lambda: health_status(address, "lre.v1.CustodyService") == SERVING, timeout=60
        )
        time.sleep(1)
        with grpc.insecure_channel(address) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            fields = {"kind": identity_pb2.PARTY_KIND_LEGAL_PERSON, "professional": True}
            _, token = register_party(
                stub, "sender", company_name="Sender", email="s@example.org", **fields
            )
            recipient, _ = register_party(
                stub, "recipient", company_name="Recipient", email="r@example.org", **fields
            )
        trivial = load(
            address,
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest().SerializeToString(),
            args.seconds,
        )
        saturated = deposits(address, token, recipient, args.seconds)
        paced = deposits(address, token, recipient, args.seconds, rate=100)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(
        f"machine: {os.cpu_count()} cores; server 1 process, signer 2 processes, PostgreSQL; {args.seconds:.0f} s each"
    )
    print(
        f"trivial RPC (health Check), same server:   {trivial['rate']:7.0f} /s   p50 {trivial['p50_ms']:.1f} ms"
    )
    print(
        f"10 KB deposits, saturated (16 in flight):  {saturated['rate']:7.0f} /s   p50 {saturated['p50_ms']:.1f} ms   p99 {saturated['p99_ms']:.1f} ms"
    )
    print(
        f"10 KB deposits, offered 100/s:             {paced['rate']:7.0f} /s   p50 {paced['p50_ms']:.1f} ms   p99 {paced['p99_ms']:.1f} ms"
    )
    print(f"ratio deposits/trivial: {saturated['rate'] / trivial['rate']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
