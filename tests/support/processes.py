"""Starting real processes from tests: the programs' directory, free ports,
a process run for a block, waiting for a condition."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

BIN = Path(sys.executable).parent


# Ports handed out below the kernel's range for outgoing connections: a
# port the kernel picked (bind to 0) and released is also the next local
# port of any client's connection (to PostgreSQL, a signer, an SMTP server)
# from the tests running beside, which may take it before the process
# under test binds it ("the port is in use by another program").
_SPAN = 12_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _worker_span(low: int, high: int) -> tuple[int, int]:
    """The part of [low, high) this pytest-xdist worker draws from: each
    worker its own, so that a port one drew and has not bound yet is never
    drawn by another (the check below only sees ports already bound)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count < 2:
        return low, high
    width = (high - low) // count
    start = low + int(worker[2:]) % count * width
    return start, start + width


# Ports this process handed out: a test draws several before starting what
# binds them (a server's gRPC and metrics ports, SeaweedFS's eight).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range, drawn
    from the system's randomness (the tests' random module may be seeded
    alike in every worker)."""
    low, high = _worker_span(max(1_024, _ephemeral_low() - _SPAN), _ephemeral_low())
    for _ in range(200):
        port = low + secrets.randbelow(high - low)
        if port in _handed_out:  # drawn before, maybe not bound yet
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


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
