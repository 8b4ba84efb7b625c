"""What the admission gate costs a call: the server's CPU per trivial RPC
(grpc.health.v1.Health/Check over mutual TLS) on a bare gRPC server and on
the gated server every process of the product runs (lre.runtime.serving:
guard, budgets, request decoded and validated under the stream limits,
metrics), measured alternately in one run.

CPU is the serving process's user+system time over the calls, steadier than a
rate on a busy machine. Load: one client process on 127.0.0.1 (4 threads),
bounded by the number of calls. Usage:
  python bench/gate_cost.py [--calls 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lre.dev.tls import CALLERS, TlsFiles, create_dev_tls
from lre.runtime.callers import certificate_names
from lre.runtime.serving import GrpcProcess

THREADS = 4


def _client(root: str, port: int, calls: int, results: multiprocessing.Queue[float]) -> None:
    files = TlsFiles(Path(root))
    name = sorted(CALLERS)[0].split(".")[0]
    credentials = grpc.ssl_channel_credentials(
        files.ca.read_bytes(),
        files.client_key(name).read_bytes(),
        files.client_cert(name).read_bytes(),
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        check(health_pb2.HealthCheckRequest(), timeout=10)

        def run() -> None:
            for _ in range(calls // THREADS):
                check(health_pb2.HealthCheckRequest(), timeout=10)

        start = time.perf_counter()
        threads = [threading.Thread(target=run) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.put(time.perf_counter() - start)


def _guard(_method: str, context: grpc.ServicerContext) -> None:
    """What the product's guards do at least: read the caller's certificate."""
    certificate_names(context)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(files: TlsFiles, gated: bool, calls: int) -> tuple[float, float]:
    """(server CPU µs per call, calls per second)."""
    credentials = grpc.ssl_server_credentials(
        [(files.service_key.read_bytes(), files.service_cert.read_bytes())],
        files.ca.read_bytes(),
        require_client_auth=True,
    )
    if gated:
        process = GrpcProcess([], "127.0.0.1:0", credentials=credentials, guard=_guard)
        process.set_serving(True)
        process.start()
        port, stop = process.port, lambda: process.stop(0)
    else:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        servicer = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()

        def stop() -> None:
            server.stop(0).wait()

    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[float] = spawn.Queue()
    client = spawn.Process(target=_client, args=(str(files.root), port, calls, results))
    try:
        before = _cpu()
        client.start()
        wall = results.get(timeout=300)
        cpu = _cpu() - before
        client.join()
    finally:
        stop()
    return cpu / calls * 1e6, calls / wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lre-gate-") as root:
        files = create_dev_tls(Path(root))
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for gated in (False, True):
                runs[gated].append(_measure(files, gated, args.calls))
    for gated, label in ((False, "bare gRPC server"), (True, "gated (lre.runtime.serving)")):
        cpu = statistics.median(c for c, _ in runs[gated])
        rate = statistics.median(r for _, r in runs[gated])
        each = ", ".join(f"{c:.0f}" for c, _ in runs[gated])
        print(f"{label:30s} server CPU {cpu:5.0f} µs/call ({each})   {rate:6.0f} calls/s")
    bare = statistics.median(c for c, _ in runs[False])
    gated_cpu = statistics.median(c for c, _ in runs[True])
    print(f"the gate's cost: {gated_cpu - bare:.0f} µs of server CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
