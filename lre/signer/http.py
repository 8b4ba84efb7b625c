"""HTTP side of the signer: RFC 3161 transport at /tsa, Prometheus at /metrics."""

from __future__ import annotations

import logging
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from lre.runtime.pool import metrics_page
from lre.signer.app import Signer
from lre.signer.errors import TokenUnavailable

log = logging.getLogger("lre.signer.http")

MAX_QUERY_BYTES = 16 * 1024
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class _Server(ThreadingHTTPServer):
    allow_reuse_port = True
    daemon_threads = True
    signer: Signer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, metrics_page())
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if self.path != "/tsa":
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != QUERY_TYPE:
            self._send(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "text/plain", f"expected {QUERY_TYPE}\n".encode()
            )
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(HTTPStatus.LENGTH_REQUIRED, "text/plain", b"Content-Length required\n")
            return
        if not 0 <= length <= MAX_QUERY_BYTES:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain", b"query too large\n")
            return
        query = self.rfile.read(length)
        try:
            reply = self.server.signer.tsa.respond(query)
        except TokenUnavailable:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"the TSA cannot sign now\n")
            return
        self._send(HTTPStatus.OK, REPLY_TYPE, reply)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http", extra={"path": self.path})


class HttpEndpoint:
    def __init__(self, signer: Signer, address: str, context: ssl.SSLContext | None = None) -> None:
        host, _, port = address.rpartition(":")
        self._server = _Server((host, int(port)), _Handler)
        if context is not None:
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.signer = signer
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
