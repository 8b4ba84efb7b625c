"""/metrics over HTTP while a letter lives its life: two server processes
(one view of both), the real signer, and the counters moved by exactly what
happened. Also: every metric the alerts and the dashboard use exists."""

from __future__ import annotations

import json
import math
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lre.server.api.streams import WIRE_CHUNK
from lre.v1 import custody_pb2, custody_pb2_grpc, identity_pb2_grpc
from tests.support.clients import ANNEX, CONTENT, deposit_letter, register_company, wait_notified
from tests.support.processes import wait_for
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, labels), and every metric family and sample name."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, names


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        processes="2",
        outbox_interval_s="0.2",
        census_interval_s="0.5",
    ) as process:
        yield process


def test_a_lifecycle_moves_the_counters_by_what_happened(
    server: ServerProcess, signer_process: SignerProcess
) -> None:
    signer_metrics = signer_process.http_url.rstrip("/") + "/metrics"
    before, _ = scrape(server.metrics_url)
    signer_before, _ = scrape(signer_metrics)
    # A channel per caller: connections, hence calls, land on both processes.
    channels = [grpc.insecure_channel(server.address) for _ in range(3)]
    identity = identity_pb2_grpc.IdentityServiceStub(channels[0])
    custody = [custody_pb2_grpc.CustodyServiceStub(c) for c in channels]
    _, sender = register_company(
        identity, server.enrolment_codes, "ms", "Expediteur SAS", "envoi@expediteur.example"
    )
    recipient, recipient_token = register_company(
        identity, server.enrolment_codes, "mr", "Dest SA", "courrier@dest.example"
    )
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)

    with pytest.raises(grpc.RpcError) as empty:
        deposit_letter(custody[0], sender, recipient, "m-0", [("vide.txt", "text/plain", b"")])
    assert empty.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    accepted = deposit_letter(custody[1], sender, recipient, "m-1")
    refused = deposit_letter(custody[2], sender, recipient, "m-2")
    wait_notified(custody[0], [accepted, refused], as_recipient)
    custody[1].AcceptLetter(
        custody_pb2.AcceptLetterRequest(name=accepted.name), metadata=as_recipient
    )
    custody[2].RefuseLetter(
        custody_pb2.RefuseLetterRequest(name=refused.name), metadata=as_recipient
    )
    downloaded = list(
        custody[0].DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=accepted.name), metadata=as_recipient
        )
    )
    for channel in channels:
        channel.close()

    def census_done() -> bool:
        now, _ = scrape(server.metrics_url)
        return (
            value(now, "lre_letters", state="accepted"),
            value(now, "lre_letters", state="refused"),
            value(now, "lre_letters", state="rejected"),
            value(now, "lre_outbox_backlog"),  # every message sent, proofs included
        ) == (1, 1, 1, 0)

    assert wait_for(census_done, timeout=10)
    after, _ = scrape(server.metrics_url)
    signer_after, _ = scrape(signer_metrics)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    custody_rpc = {"grpc_service": "lre.v1.CustodyService", "grpc_type": "client_stream"}
    deposit = {**custody_rpc, "grpc_method": "DepositLetter"}
    assert moved("grpc_server_started_total", **deposit) == 3
    assert moved("grpc_server_handled_total", **deposit, grpc_code="OK") == 2
    assert moved("grpc_server_handled_total", **deposit, grpc_code="FailedPrecondition") == 1
    assert moved("grpc_server_handled_total", **deposit, grpc_code="Unknown") == 0
    assert moved("grpc_server_handling_seconds_count", **deposit) == 3
    chunks = math.ceil(len(CONTENT) / (32 * 1024)) + math.ceil(len(ANNEX) / (32 * 1024))
    # Each deposit: an envelope and its chunks; the refused one stopped at its envelope.
    assert moved("grpc_server_msg_received_total", **deposit) == 2 * (1 + chunks) + 1
    download = {
        "grpc_service": "lre.v1.CustodyService",
        "grpc_method": "DownloadLetterContent",
        "grpc_type": "server_stream",
    }
    assert WIRE_CHUNK >= 32 * 1024 and len(downloaded) == chunks
    assert moved("grpc_server_msg_sent_total", **download) == chunks
    unary = {"grpc_service": "lre.v1.CustodyService", "grpc_type": "unary"}
    assert (
        moved("grpc_server_handled_total", **unary, grpc_method="AcceptLetter", grpc_code="OK") == 1
    )
    assert (
        moved("grpc_server_handled_total", **unary, grpc_method="RefuseLetter", grpc_code="OK") == 1
    )

    assert moved("lre_letters_deposited_total", outcome="accepted") == 2
    assert moved("lre_letters_deposited_total", outcome="rejected") == 1
    assert moved("lre_notifications_sent_total", kind="letter_waiting") == 2
    assert moved("lre_deposit_to_notification_seconds_count") == 2
    assert value(after, "lre_deposit_to_notification_seconds_bucket", le="+Inf") >= 2

    # Evidence: 1 rejection; deposit, notice, acceptance, handover; deposit, notice, refusal.
    def signer_moved(name: str, **labels: str) -> float:
        return value(signer_after, name, **labels) - value(signer_before, name, **labels)

    # The tree-heads worker may seal a head meanwhile (every tree_head_interval_s),
    # and its seal and its count may fall on either side of a scrape.
    heads = moved("lre_tree_heads_sealed_total")
    assert 8 <= signer_moved("lre_seals_issued_total") <= 8 + heads
    assert signer_moved("lre_timestamps_total", status="granted") >= 8


def test_every_metric_the_alerts_and_the_dashboard_use_exists(
    server: ServerProcess, signer_process: SignerProcess
) -> None:
    rules = (ROOT / "deploy/prometheus/lre-rules.yml").read_text()
    recorded = set(re.findall(r"record:\s*(\S+)", rules))
    dashboard = json.loads((ROOT / "deploy/grafana/lre-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expressions += re.findall(
        r"expr:\s*[>|]?\s*\n?((?:.*\n)+?)\s*(?:for|labels|- record|- alert)", rules
    )
    used = {
        name
        for expr in expressions
        for name in re.findall(r"\b(?:lre_[a-z_]+|grpc_server_[a-z_]+|lre:[a-z_:0-9]+)", expr)
    }
    assert used, "no metric found in the rules and the dashboard"

    # A server keeping content in its database (this one) has no object store
    # series; tests/e2e/test_object_store.py checks them on a server with one.
    with_object_store = {n for n in used if n.startswith("lre_object_store_")}

    def missing() -> set[str]:
        _, names = scrape(server.metrics_url)
        _, signer_names = scrape(signer_process.http_url.rstrip("/") + "/metrics")
        return used - names - signer_names - recorded - with_object_store

    # Some gauges exist once their worker has run its first step, just after
    # start (later on a loaded machine: the census waits for SQLite's lock).
    wait_for(lambda: not missing(), timeout=30)
    assert not missing(), (
        f"used by alerts or the dashboard but exposed by nobody: {sorted(missing())}"
    )
    # An idle server's scrape: no series made ahead for every method and
    # status code, no `_created` samples (it was 416 KB). A code appears once
    # a call ended with it: the health checks ended OK, nothing otherwise.
    with urllib.request.urlopen(server.metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    assert len(text) < 50_000, len(text)
    assert "_created" not in text
    codes = set(re.findall(r'grpc_server_handled_total\{[^}]*grpc_code="(\w+)"', text))
    assert codes == {"OK"}, codes
    # One panel per objective of the rules file, at least.
    titles = " ".join(panel["title"] for panel in dashboard["panels"])
    for objective in (
        "Availability",
        "latency",
        "notification",
        "non-claim",
        "token",
        "certificates",
    ):
        assert objective.lower() in titles.lower(), objective
