"""Tree heads published to witnesses outside the database, over real
sockets: a syslog collector on UDP and on a unix datagram socket opened
here, and an aiohttp server that refuses the first POSTs. The heads reach
each, in order; failures are retried and counted; a witness that never
answers does not hold the log up."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from lre.server.adapters.witness import SyslogWitness, WitnessPublisher, witnesses_from
from lre.server.audit.verify import verify_log
from lre.server.services.events import HEADS_FILE, EventLog
from tests.support.processes import free_port, wait_for
from tests.support.signer import SignerProcess
from tests.support.world import World


class Endpoint:
    """An HTTP witness (aiohttp, on its own loop and thread) that answers 503
    to the first ``failures`` POSTs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[bytes] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503)
        assert request.content_type == "application/json"
        self.bodies.append(body)
        return web.Response(status=204)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/heads", self._post)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def __enter__(self) -> Endpoint:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _received(sock: socket.socket, count: int) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    sock.settimeout(10)
    while len(messages) < count:
        data = sock.recv(65536).decode()
        assert data.startswith("<134>1 ") and " lre-server - lre-tree-head - " in data, data
        messages.append(json.loads(data.split(" lre-tree-head - ", 1)[1]))
    return messages


def _failures(kind: str) -> float:
    return REGISTRY.get_sample_value("lre_tree_head_witness_failures_total", {"witness": kind}) or 0


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[tuple[socket.socket, socket.socket, Path]]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    path = tmp_path / "log.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(path))
    yield udp, unix, path
    udp.close()
    unix.close()


def test_each_head_reaches_syslog_and_http_in_order_with_retries(
    world: World,
    signer_process: SignerProcess,
    tmp_path: Path,
    syslog: tuple[socket.socket, socket.socket, Path],
) -> None:
    udp, unix, path = syslog
    failures_before = _failures("http")
    with Endpoint(failures=2) as endpoint:
        targets = [
            f"syslog+udp://127.0.0.1:{udp.getsockname()[1]}",
            f"syslog+unix://{path}",
            f"http://127.0.0.1:{endpoint.port}/heads",
        ]
        publisher = WitnessPublisher(witnesses_from(targets), first_retry_s=0.05)
        events = EventLog(
            world.stores, world.clock, world.signer, "Test provider", tmp_path / "heads", publisher
        )
        heads = []
        try:
            for _ in range(2):
                world.deposit()
                world.clock.advance(seconds=1)
                events.sequence()
                head = events.seal_head()
                assert head is not None
                heads.append(head)
            assert wait_for(lambda: len(endpoint.bodies) == 2, timeout=20)
        finally:
            publisher.close()
    lines = (tmp_path / "heads" / HEADS_FILE).read_bytes().splitlines(keepends=True)
    assert endpoint.bodies == lines  # the whole line, in order, after two refusals
    assert _failures("http") - failures_before == 2
    for sock in (udp, unix):
        summaries = _received(sock, 2)
        assert [(s["number"], s["treeSize"], s["rootHash"]) for s in summaries] == [
            (h.number, h.tree_size, h.root_hash.hex()) for h in heads
        ]
    url = world.engine.url.render_as_string(hide_password=False)
    assert verify_log(url, signer_process.root_ca, tmp_path / "heads").ok


def test_a_witness_that_is_down_never_holds_the_log_up(world: World, tmp_path: Path) -> None:
    dead = [f"http://127.0.0.1:{free_port()}/heads", f"syslog+unix://{tmp_path / 'none.sock'}"]
    before = {kind: _failures(kind) for kind in ("http", "syslog")}
    publisher = WitnessPublisher(witnesses_from(dead), first_retry_s=0.05, max_retry_s=0.1)
    events = EventLog(world.stores, world.clock, world.signer, "Test provider", None, publisher)
    try:
        world.deposit()
        events.sequence()
        started = time.monotonic()
        assert events.seal_head() is not None
        assert time.monotonic() - started < 5
        assert wait_for(lambda: all(_failures(k) - before[k] >= 3 for k in before), timeout=20)
    finally:
        publisher.close()


def test_witness_targets_are_checked() -> None:
    with pytest.raises(ValueError):
        SyslogWitness("syslog+tcp://127.0.0.1:514")
    with pytest.raises(ValueError):
        witnesses_from(["ftp://witness.example/heads"])
