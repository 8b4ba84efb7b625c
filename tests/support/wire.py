"""HTTP/1.1 on a raw socket, byte for byte, for the framing and slow-client
tests of the HTTP ports: what a browser library would tidy away is what is
tested (two requests in one write, a body that looks like a request)."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def connect(port: int, ca: Path | None, timeout: float = 10) -> socket.socket:
    """A connection to 127.0.0.1:port, TLS trusting ``ca`` when given."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if ca is None:
        return sock
    return ssl.create_default_context(cafile=str(ca)).wrap_socket(sock, server_hostname="127.0.0.1")


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def reply(self) -> Reply:
        """The next response (Content-Length framed, as the server answers)."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self._buffer!r}")
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            if not self._fill():
                raise ConnectionError("closed inside a response body")
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Reply(int(status_line.split()[1]), headers, body)

    def nothing_more(self, wait: float = 1.0) -> bool:
        """True when no further byte arrives within ``wait`` (or the server
        closes): no second response hides behind the ones read."""
        if self._buffer:
            return False
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (TimeoutError, ssl.SSLWantReadError):
            return True
        except ConnectionResetError:
            return True

    def closed_by_peer_within(self, seconds: float) -> float | None:
        """Seconds until the server closes the connection (reading and
        dropping anything it sends), or None if it stays open that long."""
        start = time.monotonic()
        while (left := seconds - (time.monotonic() - start)) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(65536):
                    return time.monotonic() - start
            except TimeoutError:
                return None
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                return time.monotonic() - start
        return None

    def close(self) -> None:
        self.sock.close()


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    """One request; ``headers`` by Python name (content_type -> Content-Type)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-').title()}: {value}" for name, value in headers.items()]
    if body and "content_length" not in headers and "transfer_encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
