"""RFC 3161 over HTTPS (/tsa) benchmark: prints, from one run on this machine,

- the raw PKCS#11 ECDSA P-256 sign rate on the token (one thread, in process);
- the load generator's own ceiling: wrk against nginx answering a fixed 200
  to the same POST over HTTPS (a C server: what wrk can drive here);
- for the signer (``--processes``, default: the signer's default), HTTPS on
  both ports, and for each of the old HTTP server (commit ``--old``,
  http.server) and this tree's (aiohttp):
  - /tsa with one keep-alive connection: median and p99 latency;
  - /tsa with 16 keep-alive connections: rate, median and p99 latency;
  - gRPC SigningService/Timestamp over mutual TLS (2 client processes x 16
    calls in flight, as bench/signer_throughput.py): rate.

Every /tsa reply counted by wrk must be a granted timestamp: the signer's
``lre_timestamps_total{status="granted"}`` is compared with wrk's count.
Load: wrk (Debian package ``wrk``, C, Lua script for the POST body), on
127.0.0.1 only, for a bounded time each. nginx is not installed by the
project: ``apt-get download nginx && dpkg -x nginx_*.deb /tmp/nginx-pkg/root``
gives a binary to pass with ``--nginx`` (nothing is started as a service).

Usage: python bench/tsa_http.py [--seconds 5] [--nginx PATH] [--old 2e49a1f]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import TIMESTAMP, raw_sign_rate, timestamp_request
from lre.dev.tls import TlsFiles, create_dev_tls
from lre.signer.config import SignerSettings
from lre.signer.devsetup import dev_setup
from lre.v1 import signing_pb2
from tests.support.processes import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/timestamp-query"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def wrk(url: str, script: Path, connections: int, threads: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise SystemExit(f"wrk output without {label}%:\n{out}")
        return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    if rate is None:
        raise SystemExit(f"wrk output without a rate:\n{out}")
    if bad or errors:
        print(f"  ! {url} c={connections}: {bad[0] if bad else ''} {errors[0] if errors else ''}")
    return {
        "rate": float(rate[1]),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": float(total[1]) if total else 0.0,
    }


def nginx_ceiling(
    nginx: Path, tls: TlsFiles, work: Path, script: Path, seconds: float
) -> tuple[dict[str, float], dict[str, float]]:
    """wrk against nginx (one worker) returning 200 to the same POST."""
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"""daemon off; master_process off; worker_processes 1;
pid {prefix / "nginx.pid"}; error_log {prefix / "error.log"};
events {{ worker_connections 256; }}
http {{
  access_log off; {temp}
  server {{
    listen 127.0.0.1:{port} ssl; keepalive_requests 100000000;
    ssl_certificate {tls.service_cert}; ssl_certificate_key {tls.service_key};
    location / {{ return 200 "ok"; }}
  }}
}}
"""
    )
    server = subprocess.Popen(
        [str(nginx), "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"https://127.0.0.1:{port}/"
        if not wait_for(lambda: _answers(url), timeout=10):
            raise SystemExit("nginx did not start")
        return (
            wrk(url, script, 1, 1, seconds),
            wrk(url, script, 16, 2, seconds),
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(
        url,
        data=b"\x00",
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def granted(http_port: int, tls: TlsFiles) -> float:
    """lre_timestamps_total{status="granted"} over the signer's processes."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    url = f"https://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10, context=context) as reply:
        page = reply.read().decode()
    match = re.search(r'^lre_timestamps_total\{status="granted"\} ([\d.e+]+)$', page, re.M)
    return float(match[1]) if match else 0.0


def run_signer(
    source: Path, var: Path, tls: TlsFiles, processes: int, log: Path
) -> tuple[subprocess.Popen[bytes], int, int]:
    """`python -m lre.signer serve` from ``source`` (a checkout), HTTPS on
    both ports, gRPC with client certificates."""
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "LRE_CONFIG": str(var / "lre.toml"),
        "SOFTHSM2_CONF": str((var / "softhsm" / "softhsm2.conf").resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "LRE_SIGNER_PROCESSES": str(processes),
        "LRE_SIGNER_TLS_CERT_FILE": str(tls.service_cert),
        "LRE_SIGNER_TLS_KEY_FILE": str(tls.service_key),
        "LRE_SIGNER_TLS_CLIENT_CA_FILE": str(tls.ca),
        "LRE_SIGNER_LOG_RPCS": "false",
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lre.signer", "serve"],
            cwd=source,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{http_port}/tsa"
    body = signing_pb2.TimestampRequest.FromString(timestamp_request()).time_stamp_req

    def ready() -> bool:
        context = ssl.create_default_context(cafile=str(tls.ca))
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/timestamp-query"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    if not wait_for(ready, timeout=30):
        process.kill()
        raise SystemExit(f"signer from {source} did not start: see {log}")
    time.sleep(1)  # every worker connected to the token
    return process, grpc_port, http_port


async def _grpc_client(
    address: str, tls: TlsFiles, body: bytes, seconds: float, concurrency: int
) -> int:
    credentials = grpc.ssl_channel_credentials(
        tls.ca.read_bytes(),
        tls.client_key("server").read_bytes(),
        tls.client_cert("server").read_bytes(),
    )
    channels = [
        grpc.aio.secure_channel(address, credentials, [("grpc.use_local_subchannel_pool", 1)])
        for _ in range(4)
    ]
    identity = lambda b: b  # noqa: E731 -- raw bytes in and out
    calls = [
        ch.unary_unary(TIMESTAMP, request_serializer=identity, response_deserializer=identity)
        for ch in channels
    ]
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(call) -> None:  # type: ignore[no-untyped-def]
        nonlocal done
        while time.perf_counter() < deadline:
            await call(body, timeout=10)
            done += 1

    await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(concurrency)))
    for ch in channels:
        await ch.close()
    return done


def _grpc_process(args: tuple[str, Path, bytes, float, int]) -> int:
    address, root, body, seconds, concurrency = args
    return asyncio.run(_grpc_client(address, TlsFiles(root), body, seconds, concurrency))


def grpc_rate(address: str, tls: TlsFiles, seconds: float) -> float:
    body = timestamp_request()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_grpc_process, [(address, tls.root, body, 0.5, 16)] * 2)
        start = time.perf_counter()
        counts = pool.map(_grpc_process, [(address, tls.root, body, seconds, 16)] * 2)
        return sum(counts) / (time.perf_counter() - start)


def old_tree(commit: str, work: Path) -> Path:
    """The old code at ``commit``, with this tree's generated lre/v1."""
    tree = work / f"lre-{commit}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "lre"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    shutil.copytree(ROOT / "lre" / "v1", tree / "lre" / "v1", dirs_exist_ok=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=SignerSettings.processes)
    parser.add_argument("--nginx", type=Path, default=Path("/tmp/nginx-pkg/root/usr/sbin/nginx"))
    parser.add_argument("--old", default="2e49a1f", help="commit of the old server; '' to skip")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="lre-bench-tsa-"))
    var = work / "var"
    dev_setup(var)
    tls = create_dev_tls(work / "tls")
    query = work / "query.tsq"
    query.write_bytes(signing_pb2.TimestampRequest.FromString(timestamp_request()).time_stamp_req)
    script = work / "post.lua"
    script.write_text(LUA.format(body=query))
    print(
        f"machine: {os.cpu_count()} cores; {args.seconds:.0f} s per measurement;"
        f" signer processes: {args.processes}; HTTPS (TLS 1.3) everywhere"
    )
    print(f"raw PKCS#11 ECDSA P-256 sign, 1 thread: {raw_sign_rate(var, args.seconds):8.0f} /s")
    if args.nginx.exists():
        one, many = nginx_ceiling(args.nginx, tls, work, script, args.seconds)
        print(
            f"wrk ceiling (nginx, 1 worker, fixed 200): 1 connection p50 {one['p50_ms']:.3f} ms;"
            f" 16 connections {many['rate']:.0f} /s"
        )
    else:
        print(f"no nginx at {args.nginx}: generator ceiling not measured")
    trees = [("this tree (aiohttp)", ROOT)]
    if args.old:
        trees.insert(0, (f"{args.old} (http.server)", old_tree(args.old, work)))
    rows = []
    for label, source in trees:
        signer, grpc_port, http_port = run_signer(
            source, var, tls, args.processes, work / "signer.log"
        )
        try:
            url = f"https://127.0.0.1:{http_port}/tsa"
            before = granted(http_port, tls)
            one = wrk(url, script, 1, 1, args.seconds)
            many = wrk(url, script, 16, 2, args.seconds)
            # Every reply a granted timestamp (a rejection is a 200 too).
            issued = granted(http_port, tls) - before
            sent = one["requests"] + many["requests"]
            if issued < sent:
                print(f"  ! {label}: {sent:.0f} replies to wrk, {issued:.0f} timestamps granted")
            grpc_ts = grpc_rate(f"127.0.0.1:{grpc_port}", tls, args.seconds)
        finally:
            signer.terminate()
            signer.wait(timeout=30)
        rows.append((label, one, many, grpc_ts))
    print()
    print(
        "server                  | 1 conn p50 ms | 1 conn p99 ms | 16 conn /s"
        " | 16 conn p50 ms | 16 conn p99 ms | gRPC Timestamp /s"
    )
    for label, one, many, grpc_ts in rows:
        print(
            f"{label:23s} | {one['p50_ms']:13.2f} | {one['p99_ms']:13.2f} | {many['rate']:10.0f}"
            f" | {many['p50_ms']:14.2f} | {many['p99_ms']:14.2f} | {grpc_ts:17.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
