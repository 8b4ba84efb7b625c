"""The TSA refuses to issue time when its clock is not known to be in sync."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from asn1crypto import algos, tsp

from lre.signer.devsetup import DevPaths
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.asn1 import TimeStampResp
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import signer_env

NTP_EPOCH = 2208988800


class NtpServer:
    """A minimal NTP server on 127.0.0.1 whose clock is off by ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

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
            now = time.time() + self.offset
            origin = request[40:48]
            reply = struct.pack(
                "!BBbb11I",
                0x24,
                1,
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
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def ntp() -> Iterator[NtpServer]:
    server = NtpServer()
    yield server
    server.close()


def _query() -> bytes:
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": b"\x05" * 32,
                },
                "cert_req": False,
            }
        ).dump()
    )


def _offset(metrics_url: str) -> float | None:
    """lre_tsa_clock_offset_seconds as the signer last measured it."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("lre_tsa_clock_offset_seconds "):
                return float(line.split()[1])
    return None


def _http_status(url: str) -> tuple[str, set[str] | None]:
    request = urllib.request.Request(
        url, data=_query(), headers={"Content-Type": "application/timestamp-query"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        status = TimeStampResp.load(reply.read())["status"]
    return status["status"].native, status["fail_info"].native


def test_time_is_refused_while_the_clock_is_off_and_issued_once_in_sync(
    ntp: NtpServer, dev_var: DevPaths, tmp_path: Path
) -> None:
    ntp.offset = 30.0
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(
        dev_var,
        grpc_port,
        http_port,
        LRE_SIGNER_CLOCK_REFERENCE=f"ntp://127.0.0.1:{ntp.port}",
        LRE_SIGNER_CLOCK_MAX_OFFSET_MS="500",
        LRE_SIGNER_CLOCK_CHECK_INTERVAL_S="0.3",
    )
    address, url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}/tsa"
    with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log"):
        assert wait_for(lambda: health_status(address) == SERVING)
        # Refused because the offset was measured too large, not because it was
        # not measured yet: wait for the measurement before asking.
        metrics = f"http://127.0.0.1:{http_port}/metrics"
        assert wait_for(lambda: (_offset(metrics) or 0) > 29, timeout=10), _offset(metrics)
        assert _http_status(url) == ("rejection", {"time_not_available"})
        with grpc.insecure_channel(address) as channel:
            stub = signing_pb2_grpc.SigningServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Timestamp(signing_pb2.TimestampRequest(time_stamp_req=_query()), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError) as raised:
                stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=b"evidence"), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

        ntp.offset = 0.05
        assert wait_for(lambda: _http_status(url)[0] == "granted", timeout=10)

        ntp.close()  # the reference goes away: trust lapses after three intervals
        assert wait_for(
            lambda: _http_status(url) == ("rejection", {"time_not_available"}), timeout=10
        )
