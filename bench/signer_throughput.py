"""Signer benchmark: prints, from one run on this machine,

- the raw PKCS#11 ECDSA P-256 sign rate on the token (one thread, in process);
- a trivial RPC (grpc.health.v1.Health/Check) on the signer's own gRPC stack:
  the baseline the timestamp rate is compared with;
- RFC 3161 timestamps over gRPC: rate, p50 and p99 latency;

each for 1 and 2 signer processes. Load comes from separate client processes
(grpc.aio, raw bytes so that clients spend little CPU), on 127.0.0.1 only,
for a bounded time. Usage: python bench/signer_throughput.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from asn1crypto import algos, tsp
from grpc_health.v1 import health_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lre.signer.devsetup import dev_setup, settings_for
from lre.signer.token import Token
from lre.v1 import signing_pb2
from tests.support.processes import BIN, free_port, wait_for
from tests.support.rpc import SERVING, health_status

HEALTH = "/grpc.health.v1.Health/Check"
TIMESTAMP = "/lre.v1.SigningService/Timestamp"


def timestamp_request() -> bytes:
    query = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": hashlib.sha256(b"benchmark").digest(),
            },
            "nonce": 123456789,
            "cert_req": True,
        }
    )
    return signing_pb2.TimestampRequest(time_stamp_req=query.dump()).SerializeToString()


async def _client(
    address: str, method: str, body: bytes, seconds: float, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    identity = lambda b: b  # noqa: E731 -- raw bytes in and out
    # One channel per client task group; several connections spread over SO_REUSEPORT workers.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(4)
    ]
    calls = [
        ch.unary_unary(method, request_serializer=identity, response_deserializer=identity)
        for ch in channels
    ]
    deadline = time.perf_counter() + seconds

    async def worker(call) -> None:  # type: ignore[no-untyped-def]
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call(body, timeout=10)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(concurrency)))
    for ch in channels:
        await ch.close()
    return latencies


def _client_process(args: tuple[str, str, bytes, float, int]) -> list[float]:
    return asyncio.run(_client(*args))


def load(
    address: str, method: str, body: bytes, seconds: float, clients: int = 2, concurrency: int = 16
) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        # A short warm-up, then the measured run.
        pool.map(_client_process, [(address, method, body, 0.5, concurrency)] * clients)
        start = time.perf_counter()
        results = pool.map(
            _client_process, [(address, method, body, seconds, concurrency)] * clients
        )
        elapsed = time.perf_counter() - start
    latencies = sorted(x for r in results for x in r)
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def raw_sign_rate(var: Path, seconds: float) -> float:
    settings = settings_for(var_paths(var))
    token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
    token.connect()
    digest = hashlib.sha256(b"x").digest()
    count, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        token.sign_digest(settings.seal_key_label, digest)
        count += 1
    rate = count / (time.perf_counter() - start)
    token.close()
    return rate


def var_paths(var: Path):  # type: ignore[no-untyped-def]
    from lre.signer.devsetup import DevPaths

    return DevPaths(var)


def run_signer(var: Path, processes: int) -> tuple[subprocess.Popen[bytes], str]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "LRE_CONFIG": str(var / "lre.toml"),
        "SOFTHSM2_CONF": str((var / "softhsm" / "softhsm2.conf").resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "LRE_SIGNER_PROCESSES": str(processes),
    }
    process = subprocess.Popen(
        [str(BIN / "lre-signer"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{grpc_port}"
    if not wait_for(lambda: health_status(address) == SERVING, timeout=30):
        process.kill()
        raise SystemExit("signer did not start")
    time.sleep(1)  # let every worker connect to the token
    return process, address


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="lre-bench-"))
    dev_setup(var)
    print(
        f"machine: {os.cpu_count()} cores; {args.seconds:.0f} s per measurement;"
        " load from 2 client processes x 16 calls in flight"
    )
    print(f"raw PKCS#11 ECDSA P-256 sign, 1 thread: {raw_sign_rate(var, args.seconds):8.0f} /s")
    health = health_pb2.HealthCheckRequest().SerializeToString()
    stamp = timestamp_request()
    rows = []
    for processes in args.processes:
        signer, address = run_signer(var, processes)
        try:
            echo = load(address, HEALTH, health, args.seconds)
            ts = load(address, TIMESTAMP, stamp, args.seconds)
        finally:
            signer.terminate()
            signer.wait(timeout=30)
        rows.append((processes, echo, ts))
    print()
    print(
        "signer processes | trivial RPC /s | timestamps /s | ratio"
        " | ts p50 ms | ts p99 ms | trivial p50 ms"
    )
    for processes, echo, ts in rows:
        print(
            f"{processes:16d} | {echo['rate']:14.0f} | {ts['rate']:13.0f}"
            f" | {ts['rate'] / echo['rate']:5.2f} |"
            f" {ts['p50_ms']:9.2f} | {ts['p99_ms']:9.2f} | {echo['p50_ms']:14.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
