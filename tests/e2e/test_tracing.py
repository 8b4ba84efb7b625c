"""OpenTelemetry tracing, on when a collector is configured: one deposit is
one trace, the signer's span a child of the server's, exported over OTLP to
a collector (here the test's, in process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from lre.signer.devsetup import DevPaths
from lre.v1 import custody_pb2_grpc, identity_pb2_grpc
from tests.support.clients import deposit_letter, register_company
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.server import server_process
from tests.support.signer import SignerProcess, signer_env

# Export at once rather than every 5 s.
QUICK = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Every span exported to it: (service name, span)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def Export(  # gRPC's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans.append((attributes.get("service.name", ""), span))
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, service: str, name: str) -> list[object]:
        with self._lock:
            return [s for svc, s in self.spans if svc == service and s.name == name]  # type: ignore[attr-defined]


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    found = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield found, f"http://127.0.0.1:{port}"
    server.stop(grace=0)


def test_one_deposit_is_one_trace_across_server_and_signer(
    dev_var: DevPaths, collector: tuple[Collector, str], tmp_path: Path
) -> None:
    spans, endpoint = collector
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(dev_var, grpc_port, http_port, LRE_SIGNER_TRACING_ENDPOINT=endpoint, **QUICK)
    log = tmp_path / "signer.log"
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        # The server migrates its database while the signer starts; it is
        # ready once the signer is (custody needs it).
        address = f"127.0.0.1:{grpc_port}"
        signer = SignerProcess(address, f"http://127.0.0.1:{http_port}/", dev_var, log)
        with server_process(
            signer,
            tmp_path,
            f"sqlite:///{tmp_path / 'lre.db'}",
            environment=QUICK,
            tracing_endpoint=endpoint,
            run_workers="false",
        ) as server, grpc.insecure_channel(server.address) as channel:  # fmt: skip
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            _, sender = register_company(
                identity, server.enrolment_codes, "ts", "Expediteur SAS", "envoi@exp.example"
            )
            recipient, _ = register_company(
                identity, server.enrolment_codes, "tr", "Dest SA", "courrier@dest.example"
            )
            custody = custody_pb2_grpc.CustodyServiceStub(channel)
            deposit_letter(custody, sender, recipient, "traced-1")

            def joined() -> bool:
                deposits = spans.named("lre-server", "lre.v1.CustodyService/DepositLetter")
                seals = spans.named("lre-signer", "lre.v1.SigningService/SealEvidence")
                return any(
                    s.trace_id == d.trace_id and s.parent_span_id == d.span_id  # type: ignore[attr-defined]
                    for d in deposits
                    for s in seals
                )

            assert wait_for(joined, timeout=15), [(svc, s.name) for svc, s in spans.spans]  # type: ignore[attr-defined]
    (deposit,) = spans.named("lre-server", "lre.v1.CustodyService/DepositLetter")
    attributes = {a.key: a.value for a in deposit.attributes}  # type: ignore[attr-defined]
    assert attributes["rpc.grpc.status_code"].int_value == 0
    assert attributes["rpc.method"].string_value == "DepositLetter"
    # The request's values never reach a span.
    assert "traced-1" not in str(spans.spans)
