"""Several worker processes of one service on the same ports (SO_REUSEPORT),
and the Prometheus view over all of them."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

log = logging.getLogger("lre.runtime.pool")


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


class _MetricsServer(ThreadingHTTPServer):
    allow_reuse_port = True
    daemon_threads = True


class _MetricsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        found = self.path.split("?")[0] == "/metrics"
        body = metrics_page() if found else b"not found\n"
        self.send_response(HTTPStatus.OK if found else HTTPStatus.NOT_FOUND)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST if found else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes are not worth a log line each


class MetricsEndpoint:
    """/metrics over HTTP, on a port the pool's processes share."""

    def __init__(self, address: str, context: ssl.SSLContext | None = None) -> None:
        host, _, port = address.rpartition(":")
        self._server = _MetricsServer((host, int(port)), _MetricsHandler)
        if context is not None:
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
