"""The server's /metrics port (HTTPS, 2 s timeout) against idle clients that
never send a TLS hello: scrapes are served meanwhile, the idle ones are cut."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from lre.dev.tls import create_dev_tls
from tests.support.server import server_process
from tests.support.signer import SignerProcess
from tests.support.wire import Connection

TIMEOUT_S = 2.0


def test_idle_connections_do_not_block_scrapes_and_are_cut(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    tls = create_dev_tls(tmp_path / "tls")
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        tls=tls,
        run_workers="false",
        metrics_timeout_s=str(TIMEOUT_S),
    ) as server:
        port = urlsplit(server.metrics_url).port
        assert port is not None
        url = f"https://127.0.0.1:{port}/metrics"
        context = ssl.create_default_context(cafile=str(tls.ca))
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        try:
            start = time.monotonic()
            with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context) as reply:
                assert reply.status == 200
                assert b"grpc_server_started_total" in reply.read()
            assert time.monotonic() - start < TIMEOUT_S
            for sock in idle:
                assert Connection(sock).closed_by_peer_within(TIMEOUT_S + 3) is not None
        finally:
            for sock in idle:
                sock.close()
        log = server.log.read_text()
    assert "Traceback" not in log, log
