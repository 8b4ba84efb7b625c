"""Deposit benchmark: 10 KB letters deposited end to end (stored,
encrypted, sealed and timestamped by the signer, outbox and charge written)
on PostgreSQL, beside a trivial RPC (grpc.health Check) on the same server,
measured in the same run.

Prints: the saturated deposit rate with p50/p99, the p99 at half of that
rate offered (the tail a host should keep below its capacity), and the
trivial RPC rate. Load: client processes on
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
# Sent but not counted: new connections, the clients' and the server's first calls.
WARMUP_S = 1.0


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
    address: str,
    token: str,
    recipient: str,
    start_at: float,
    seconds: float,
    concurrency: int,
    rate: float,
    first_slot: int,
    slot_stride: int,
) -> tuple[list[float], float]:
    """Closed loop when ``rate`` is 0; else each worker sends on its own
    slots of a schedule spaced 1/rate apart over all workers of all clients,
    and a latency counts from the slot (a late start is latency too). The
    first WARMUP_S seconds are sent but not counted."""
    identity = lambda b: b  # noqa: E731
    latencies: list[float] = []
    # One channel per worker: connections, hence server processes, share the load.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(concurrency)
    ]
    for channel in channels:
        await channel.channel_ready()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    origin = time.perf_counter()
    measured_from = origin + WARMUP_S
    deadline = measured_from + seconds

    async def worker(index: int, channel: grpc.aio.Channel) -> None:
        call = channel.stream_unary(
            DEPOSIT, request_serializer=identity, response_deserializer=identity
        )
        slot = first_slot + index * slot_stride
        while time.perf_counter() < deadline:
            scheduled = time.perf_counter()
            if rate:
                scheduled = origin + slot / rate
                slot += concurrency * slot_stride
                if scheduled >= deadline:
                    break
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            await call(
                iter(_messages(recipient)),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
            if scheduled >= measured_from:
                latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(worker(i, channel) for i, channel in enumerate(channels)))
    elapsed = time.perf_counter() - measured_from
    for channel in channels:
        await channel.close()
    return latencies, elapsed


def _run_depositor(
    args: tuple[str, str, str, float, float, int, float, int, int],
) -> tuple[list[float], float]:
    return asyncio.run(_depositor(*args))


def deposits(
    address: str, token: str, recipient: str, seconds: float, rate: float = 0.0
) -> dict[str, float]:
    """Two client processes of 8 workers each; ``rate``: letters/s offered
    in all, evenly spaced (0: as fast as they are answered)."""
    clients, concurrency = 2, 8
    start_at = time.time() + 3.0  # every client connected and waiting
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        results = pool.map(
            _run_depositor,
            [
                (address, token, recipient, start_at, seconds, concurrency, rate, c, clients)
                for c in range(clients)
            ],
        )
    latencies = sorted(x for r, _ in results for x in r)
    elapsed = max(e for _, e in results)
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
        half = saturated["rate"] / 2
        paced = deposits(
            stack.address, stack.sender_token, stack.recipient, args.seconds, rate=half
        )
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
        f"10 KB deposits, offered {half:5.1f}/s (half):  {paced['rate']:7.0f} /s   p50 {paced['p50_ms']:.1f} ms   p99 {paced['p99_ms']:.1f} ms"
    )
    print(f"ratio deposits/trivial: {saturated['rate'] / trivial['rate']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
