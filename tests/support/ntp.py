"""Small NTP servers on loopback ports, each with its own clock offset, for
the TSA's clock check: a source can be made wrong (``offset``), report
itself unsynchronised (``leap`` 3), or go away (``close``)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

NTP_EPOCH = 2208988800


class NtpServer:
    """A minimal NTP server on 127.0.0.1 whose clock is off by ``offset`` seconds."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.leap = 0
        self.stratum = 1
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ntp://127.0.0.1:{self.port}"

    @staticmethod
    def _ntp(t: float) -> tuple[int, int]:
        t += NTP_EPOCH
        return int(t), int((t % 1) * 2**32)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request, peer = self.socket.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time() + self.offset
            origin = request[40:48]
            reply = struct.pack(
                "!BBbb11I",
                (self.leap << 6) | 0x24,
                self.stratum,
                0,
                -20,
                0,
                0,
                0x4C4F434C,
                *self._ntp(now),
                0,
                0,
                *self._ntp(now),
                *self._ntp(now),
            )
            reply = reply[:24] + origin + reply[32:]
            self.socket.sendto(reply, peer)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.socket.close()


@contextmanager
def ntp_servers(*offsets: float) -> Iterator[list[NtpServer]]:
    servers = [NtpServer(offset) for offset in offsets]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()
