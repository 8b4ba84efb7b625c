"""The signer's HTTPS port (/tsa, /metrics) against idle, slow, broken and
ambiguous clients: each is refused or cut, and other clients are served
meanwhile. A real `lre-signer serve` with TLS and a 2 s HTTP timeout."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import tsp

from lre.dev.tls import TlsFiles, create_dev_tls
from lre.signer.devsetup import DevPaths
from tests.support.asn1 import timestamp_request
from tests.support.pki import openssl, ts_verify
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.signer import signer_env
from tests.support.wire import Connection, connect, request

TIMEOUT_S = 2.0
QUERY = "application/timestamp-query"


@dataclass(frozen=True)
class HttpsSigner:
    port: int
    tls: TlsFiles
    paths: DevPaths
    log: Path
    grpc_port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def connection(self) -> Connection:
        return Connection(connect(self.port, self.tls.ca))

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca))

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url + path, timeout=timeout, context=self.context()) as r:
            return r.status, r.read()

    def stamp(self, body: bytes, timeout: float = 5) -> tuple[int, str, bytes]:
        req = urllib.request.Request(
            self.url + "/tsa", data=body, headers={"Content-Type": QUERY}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout, context=self.context()) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture(scope="module")
def signer(dev_var: DevPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsSigner]:
    root = tmp_path_factory.mktemp("https-signer")
    tls = create_dev_tls(root / "tls")
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(
        dev_var,
        grpc_port,
        http_port,
        LRE_SIGNER_TLS_CERT_FILE=str(tls.service_cert),
        LRE_SIGNER_TLS_KEY_FILE=str(tls.service_key),
        LRE_SIGNER_TLS_CLIENT_CA_FILE=str(tls.ca),
        LRE_SIGNER_HTTP_TIMEOUT_S=str(TIMEOUT_S),
    )
    log = root / "signer.log"
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        signer = HttpsSigner(http_port, tls, dev_var, log, grpc_port)

        def ready() -> bool:
            try:
                return signer.stamp(timestamp_request(b"\x01" * 32))[0] == 200
            except OSError:
                return False

        assert wait_for(ready), log.read_text()
        yield signer


def _granted(reply: bytes) -> bool:
    return bool(tsp.TimeStampResp.load(reply)["status"]["status"].native == "granted")


def test_openssl_verifies_a_reply_fetched_over_https(signer: HttpsSigner, tmp_path: Path) -> None:
    document, query, reply = tmp_path / "doc", tmp_path / "q.tsq", tmp_path / "r.tsr"
    document.write_bytes(b"registered letter over HTTPS")
    made = openssl("ts", "-query", "-data", document, "-sha256", "-cert", "-out", query)
    assert made.returncode == 0
    status, content_type, body = signer.stamp(query.read_bytes())
    assert (status, content_type) == (200, "application/timestamp-reply")
    reply.write_bytes(body)
    assert ts_verify(
        document, reply, signer.paths.pki / "root-ca.pem", signer.paths.pki / "timestamping.pem"
    )


def test_idle_connections_without_a_tls_hello_block_no_one_and_are_cut(
    signer: HttpsSigner,
) -> None:
    idle = [socket.create_connection(("127.0.0.1", signer.port)) for _ in range(8)]
    try:
        # Served while the idle connections are still open (each step of
        # these calls times out before the idle ones would be cut).
        assert _granted(signer.stamp(timestamp_request(b"\x02" * 32), timeout=TIMEOUT_S)[2])
        assert signer.get("/metrics", timeout=TIMEOUT_S)[0] == 200
        for sock in idle:
            cut = Connection(sock).closed_by_peer_within(TIMEOUT_S + 3)
            assert cut is not None, "an idle connection outlived the handshake timeout"
    finally:
        for sock in idle:
            sock.close()


def test_a_slowloris_is_cut_after_the_timeout_while_others_are_served(
    signer: HttpsSigner,
) -> None:
    slow = signer.connection()
    head = request("POST", "/tsa", timestamp_request(b"\x03" * 32), content_type=QUERY)
    start = time.monotonic()
    cut_after = None
    with ThreadPoolExecutor(1) as other:
        served = other.submit(
            lambda: signer.stamp(timestamp_request(b"\x04" * 32), timeout=TIMEOUT_S)
        )
        # One byte every 0.2 s: a request head that would take ~20 s.
        for byte in head:
            try:
                slow.send(bytes([byte]))
            except OSError:
                cut_after = time.monotonic() - start
                break
            if slow.closed_by_peer_within(0.2) is not None:
                cut_after = time.monotonic() - start
                break
            assert time.monotonic() - start < TIMEOUT_S + 3, "the trickling client was not cut"
        assert _granted(served.result()[2])
    slow.close()
    assert cut_after is not None
    assert TIMEOUT_S - 0.5 < cut_after < TIMEOUT_S + 3


def test_a_slow_body_gets_408_and_the_connection_closes(signer: HttpsSigner) -> None:
    conn = signer.connection()
    body = timestamp_request(b"\x05" * 32)
    conn.send(request("POST", "/tsa", body, content_type=QUERY)[: -len(body) + 3])
    start = time.monotonic()
    reply = conn.reply()
    assert reply.status == 408
    assert TIMEOUT_S - 0.5 < time.monotonic() - start < TIMEOUT_S + 3
    # after at most the timeout of reading and dropping what still comes
    # (lingering close, so that the client reads the 408 rather than a reset)
    assert conn.closed_by_peer_within(TIMEOUT_S + 2) is not None
    conn.close()


# A body that is itself a request: if the server left it unread, it would
# answer it as a second request on the connection (request smuggling).
SMUGGLED = request("GET", "/metrics")


@pytest.mark.parametrize(
    ("method", "path", "content_type", "status"),
    [
        ("POST", "/nothing-here", QUERY, 404),
        ("POST", "/tsa", "application/octet-stream", 415),
        ("PUT", "/tsa", QUERY, 405),
    ],
)
def test_an_unread_body_is_never_parsed_as_the_next_request(
    signer: HttpsSigner, method: str, path: str, content_type: str, status: int
) -> None:
    conn = signer.connection()
    conn.send(
        request(method, path, SMUGGLED, content_type=content_type)
        + request("POST", "/tsa", timestamp_request(b"\x06" * 32), content_type=QUERY)
    )
    first = conn.reply()
    assert first.status == status
    second = conn.reply()
    assert second.status == 200
    assert second.headers["content-type"] == "application/timestamp-reply"
    assert _granted(second.body)
    assert conn.nothing_more()
    conn.close()


def test_chunked_with_content_length_is_refused(signer: HttpsSigner) -> None:
    body = timestamp_request(b"\x07" * 32)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    conn = signer.connection()
    conn.send(
        request(
            "POST",
            "/tsa",
            chunked,
            content_type=QUERY,
            content_length=str(len(body)),
            transfer_encoding="chunked",
        )
    )
    assert conn.reply().status == 400
    assert conn.closed_by_peer_within(2) is not None
    conn.close()
    # The client's mistake: one structured line, not an error with a traceback.
    assert wait_for(lambda: _bad_request_logged(signer), timeout=5)


def _bad_request_logged(signer: HttpsSigner) -> bool:
    entries = [json.loads(line) for line in signer.log_lines()]
    return any(
        e["message"] == "bad HTTP request"
        and e["level"] == "info"
        and e["status"] == 400
        and "traceback" not in e
        for e in entries
    )


def test_a_chunked_query_alone_is_answered(signer: HttpsSigner) -> None:
    body = timestamp_request(b"\x08" * 32)
    conn = signer.connection()
    conn.send(
        request(
            "POST",
            "/tsa",
            f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n",
            content_type=QUERY,
            transfer_encoding="chunked",
        )
    )
    reply = conn.reply()
    assert reply.status == 200
    assert _granted(reply.body)
    conn.close()


def test_get_tsa_is_405_with_allow_post(signer: HttpsSigner) -> None:
    conn = signer.connection()
    conn.send(request("GET", "/tsa"))
    reply = conn.reply()
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    conn.close()


def test_an_oversized_query_is_413_before_it_is_read(signer: HttpsSigner) -> None:
    conn = signer.connection()
    conn.send(
        request("POST", "/tsa", content_type=QUERY, content_length=str(10 * 1024 * 1024))
        + b"\x00" * 1024
    )
    assert conn.reply().status == 413
    # after at most the timeout of reading and dropping (so that the client
    # reads the 413 rather than a reset)
    assert conn.closed_by_peer_within(TIMEOUT_S + 2) is not None
    conn.close()


def test_clients_that_vanish_mid_reply_leave_only_json_lines(signer: HttpsSigner) -> None:
    before = len(signer.log_lines())
    for i in range(30):
        conn = signer.connection()
        path, body = ("/tsa", timestamp_request(bytes([i]) * 32)) if i % 2 else ("/metrics", b"")
        method = "POST" if body else "GET"
        conn.send(request(method, path, body, content_type=QUERY) * 3)
        # RST instead of FIN, before the replies are read.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    assert _granted(signer.stamp(timestamp_request(b"\x09" * 32))[2])
    time.sleep(0.5)
    for line in signer.log_lines()[before:]:
        entry = json.loads(line)  # a plain traceback would not parse
        assert entry["level"] in {"debug", "info"}, entry


def test_the_grpc_cores_own_lines_reach_the_log_as_json(signer: HttpsSigner) -> None:
    """A plaintext client on the mutual TLS gRPC port: the gRPC core logs the
    failed handshake from C++, which becomes a JSON line like every other."""
    with socket.create_connection(("127.0.0.1", signer.grpc_port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.recv(1024)

    def core_lines() -> list[dict[str, object]]:
        entries = [json.loads(line) for line in signer.log_lines() if line.strip()]
        return [e for e in entries if e["logger"] == "grpc.core"]

    assert wait_for(lambda: any("andshake" in str(e["message"]) for e in core_lines())), (
        signer.log.read_text()
    )
    entry = next(e for e in core_lines() if "andshake" in str(e["message"]))
    assert str(entry["source"]).startswith("ssl_transport_security")
    # Every line of the stream is a JSON object (json.loads above would fail).
