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
import statistics
import sys
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import load
from bench.stack import POSTGRES, running_stack
from lre.v1 import custody_pb2

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
    # One channel per worker: connections, hence server processes, share the load.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(concurrency)
    ]
    deadline = time.perf_counter() + seconds
    interval = concurrency / rate if rate else 0.0

    async def worker(channel: grpc.aio.Channel) -> None:
        call = channel.stream_unary(
            DEPOSIT, request_serializer=identity, response_deserializer=identity
        )
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

    await asyncio.gather(*(worker(channel) for channel in channels))
    for channel in channels:
        await channel.close()
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
        "count": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--signer-processes", type=int, default=2)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    with running_stack(args.server_processes, args.signer_processes, args.postgres) as stack:
        trivial = load(
            stack.address,
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest().SerializeToString(),
            args.seconds,
        )
        saturated = deposits(stack.address, stack.sender_token, stack.recipient, args.seconds)
        paced = deposits(stack.address, stack.sender_token, stack.recipient, args.seconds, rate=100)
    print(
        f"machine: {os.cpu_count()} cores; server {args.server_processes} process(es), "
        f"signer {args.signer_processes}, PostgreSQL; {args.seconds:.0f} s each"
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
