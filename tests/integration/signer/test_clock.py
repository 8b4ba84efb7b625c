"""The TSA refuses to issue time when its clock is not known to be in sync."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from asn1crypto import algos, tsp

from lre.signer.devsetup import DevPaths
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.asn1 import TimeStampResp
from tests.support.ntp import NtpServer, ntp_servers
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import signer_env

SOURCE_OFFSET = "lre_tsa_clock_source_offset_seconds"


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


def _metric(metrics_url: str, name: str, source: str | None = None) -> float | None:
    wanted = f'{name}{{source="{source}"}}' if source else name
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[1])
    return None


def _refusal(url: str) -> str:
    """The statusString of the TSA's answer ("" when it grants)."""
    request = urllib.request.Request(
        url, data=_query(), headers={"Content-Type": "application/timestamp-query"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        status = TimeStampResp.load(reply.read())["status"]
    if status["status"].native == "granted":
        return ""
    return " ".join(status["status_string"].native or [])


def _journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_three_sources_outvote_a_wrong_one_and_time_is_refused_without_a_majority(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    journal = tmp_path / "clock-journal.jsonl"
    with ntp_servers(0.01, 0.02, -0.01) as (a, b, c):
        grpc_port, http_port = free_port(), free_port()
        env = signer_env(
            dev_var,
            grpc_port,
            http_port,
            LRE_SIGNER_CLOCK_REFERENCES=",".join(s.url for s in (a, b, c)),
            LRE_SIGNER_CLOCK_MAX_OFFSET_MS="500",
            LRE_SIGNER_CLOCK_CHECK_INTERVAL_S="0.3",
            LRE_SIGNER_CLOCK_JOURNAL_FILE=str(journal),
        )
        address, url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}/tsa"
        metrics = f"http://127.0.0.1:{http_port}/metrics"
        with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log"):
            assert wait_for(lambda: health_status(address) == SERVING)
            assert wait_for(lambda: _refusal(url) == "", timeout=10)

            # One source 30 s off: outvoted by the two others, time still issued.
            b.offset = 30.0
            assert wait_for(lambda: (_metric(metrics, SOURCE_OFFSET, b.url) or 0) > 29)
            assert _refusal(url) == ""
            assert _metric(metrics, "lre_tsa_clock_agreeing_sources") == 2

            # A second one gone: no majority, refused, and the reason names both.
            c.close()
            assert wait_for(lambda: _metric(metrics, "lre_tsa_clock_source_up", c.url) == 0)
            reason = _refusal(url)
            assert "only 1 of 3 clock sources" in reason, reason
            assert "2 needed" in reason and "clock_max_offset_ms (500 ms)" in reason
            # +30 s as measured over loopback: +29.998 s or +30.001 s.
            assert re.search(rf"{re.escape(b.url)} too far \(offset \+(29\.9|30\.0)", reason)
            assert f"{c.url} unreachable" in reason
            assert _metric(metrics, "lre_tsa_clock_trusted") == 0
            with grpc.insecure_channel(address) as channel:
                stub = signing_pb2_grpc.SigningServiceStub(channel)
                with pytest.raises(grpc.RpcError) as raised:
                    stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=b"{}"), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "only 1 of 3 clock sources" in str(raised.value.details())

            # The wrong source comes right: two of three again.
            b.offset = 0.0
            assert wait_for(lambda: _refusal(url) == "", timeout=10)

    # The journal holds every check: each source's offset and result, and the decision.
    checks = _journal(journal)
    assert len(checks) >= 4
    assert {s["source"] for s in checks[0]["sources"]} == {a.url, b.url, c.url}
    results = {(s["source"], s["result"].split(" (")[0]) for e in checks for s in e["sources"]}
    assert {(b.url, "too far"), (c.url, "unreachable"), (a.url, "vouches")} <= results
    far = next(s for e in checks for s in e["sources"] if s["result"] == "too far")
    assert far["offset_s"] > 29 and far["bound_s"] > 29 and far["stratum"] == 1
    refused = [e for e in checks if not e["trusted"]]
    assert refused and "only 1 of 3" in refused[0]["reason"]
    assert checks[-1]["trusted"] is True


def test_an_unsynchronised_source_does_not_vouch(dev_var: DevPaths, tmp_path: Path) -> None:
    """Leap indicator 3 (the source's own clock is not synchronised): it
    answers, but its time is not taken, even with a single source."""
    with ntp_servers(0.0) as (only,):
        only.leap = 3
        grpc_port, http_port = free_port(), free_port()
        env = signer_env(
            dev_var,
            grpc_port,
            http_port,
            LRE_SIGNER_CLOCK_REFERENCES=only.url,
            LRE_SIGNER_CLOCK_CHECK_INTERVAL_S="0.3",
        )
        url = f"http://127.0.0.1:{http_port}/tsa"
        with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log"):
            assert wait_for(lambda: health_status(f"127.0.0.1:{grpc_port}") == SERVING)
            assert wait_for(lambda: "unsynchronised" in _refusal(url), timeout=10)
            only.leap = 0
            assert wait_for(lambda: _refusal(url) == "", timeout=10)
