"""TCP peers on 127.0.0.1 that misbehave the way a hostile webhook receiver
or witness would: not HTTP, redirects, answers that never end, status lines
that trickle. Each connection runs ``answer`` on its own thread; every loop
is bounded."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable

Answer = Callable[[socket.socket, bytes], None]


class Peer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Peer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = _read_request(conn)
                self.requests.append(request)
                self.answer(conn, request)
            except OSError:
                pass


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 1 << 16:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def status(code: int, headers: str = "") -> Answer:
    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(f"HTTP/1.1 {code} X\r\n{headers}Content-Length: 0\r\n\r\n".encode())

    return answer


def not_http(conn: socket.socket, _request: bytes) -> None:
    conn.sendall(b"HELLO\r\n")


def endless(conn: socket.socket, _request: bytes) -> None:
    """200, then a body that goes on (for at most 30 s)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        conn.sendall(b"x" * 65536)


def trickle(every_s: float) -> Answer:
    """A status line one byte at a time (for at most 60 bytes)."""

    def answer(conn: socket.socket, _request: bytes) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(every_s)

    return answer


def stub_resolver(names: dict[str, str]) -> Callable[[str, int], list[str]]:
    """Names to addresses without DNS; an IP literal resolves to itself."""

    def resolve(host: str, _port: int) -> list[str]:
        if host in names:
            return [names[host]] if names[host] else []
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return []

    return resolve
