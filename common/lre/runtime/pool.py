"""Several worker processes of one service on the same ports (SO_REUSEPORT),
and the Prometheus view over all of them."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("lre.runtime.pool")
# No `<name>_created` sample beside each counter and histogram: Prometheus's
# text format ignores them, and they doubled the page.
disable_created_metrics()  # type: ignore[no-untyped-call]


def metrics_registry() -> CollectorRegistry:
    """The whole pool's metrics when several processes share the port."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return DEFAULT_REGISTRY


def metrics_page() -> bytes:
    return generate_latest(metrics_registry())


def serve_pool(command: list[str], single_process_env: dict[str, str], processes: int) -> int:
    """Runs ``processes`` copies of ``command`` and restarts one that dies,
    until SIGTERM or SIGINT, which it passes on.

    The workers share a prometheus-client multiprocess directory, so any of
    them answers /metrics for all; ``single_process_env`` tells a worker it is
    one (so that it does not start a pool of its own)."""
    metrics_dir = tempfile.mkdtemp(prefix="lre-metrics-")
    env = {**os.environ, **single_process_env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    workers = [subprocess.Popen(command, env=env) for _ in range(processes)]
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.wait(0.5):
        for i, worker in enumerate(workers):
            if worker.poll() is not None and not stopping.is_set():
                log.error("worker exited; restarting", extra={"exit_code": worker.returncode})
                multiprocess.mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]
                workers[i] = subprocess.Popen(command, env=env)
    for worker in workers:
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
