"""The signer's /metrics on a listener of its own (metrics_address): the
/tsa port, which TSA clients may reach, serves no metrics, and the metrics
port serves no timestamps."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from lre.signer.devsetup import DevPaths
from tests.support.asn1 import timestamp_request
from tests.support.processes import free_port
from tests.support.signer import signer


def _status(url: str, body: bytes | None = None) -> int:
    headers = {"Content-Type": "application/timestamp-query"} if body else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_are_apart_from_the_tsa_port(dev_var: DevPaths, tmp_path: Path) -> None:
    metrics_port, http_port = free_port(), free_port()
    settings = {
        "metrics_address": f"127.0.0.1:{metrics_port}",
        "http_address": f"127.0.0.1:{http_port}",
    }
    log = tmp_path / "signer.log"
    with signer(dev_var, dev_var.softhsm_conf.resolve(), log, **settings):
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert r.status == 200
            assert b"lre_build_info" in r.read()
        assert _status(f"http://127.0.0.1:{http_port}/metrics") == 404
        query = timestamp_request(b"\x02" * 32)
        assert _status(f"http://127.0.0.1:{http_port}/tsa", query) == 200
        assert _status(f"http://127.0.0.1:{metrics_port}/tsa", query) == 404
    assert f'"metrics_port": {metrics_port}' in log.read_text()
