"""lre.runtime.serving: a bug in a handler reaches the caller as INTERNAL with a
request id, never as UNKNOWN with the exception's text."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from lre.runtime.inflight import CALLS, idle
from lre.runtime.serving import REQUEST_ID_KEY, GrpcProcess, ServiceBinding, wait_for_signal
from lre.runtime.status import invalid_argument
from lre.v1 import custody_pb2, custody_pb2_grpc, signing_pb2, signing_pb2_grpc
from tests.support.rpc import NOT_SERVING, SERVING, health_status, serving


class _Servicer(signing_pb2_grpc.SigningServiceServicer):
    def SealEvidence(self, request, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret-detail /srv/internal/path")

    def WrapKey(self, request, context):  # type: ignore[no-untyped-def]
        invalid_argument(context, "key", "must be 32 bytes")


@pytest.fixture
def process() -> Iterator[GrpcProcess]:
    binding = ServiceBinding(
        "lre.v1.SigningService",
        signing_pb2_grpc.add_SigningServiceServicer_to_server,
        _Servicer(),  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    )
    with serving(binding) as served:
        yield served


def test_unexpected_exception_is_internal_without_detail(
    process: GrpcProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as raised:
            stub.SealEvidence(
                signing_pb2.SealEvidenceRequest(content=b"x"),
                metadata=((REQUEST_ID_KEY, "req-7"),),
                timeout=5,
            )
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request id req-7)"
    assert "secret-detail" not in str(raised.value)
    assert any(getattr(r, "code", None) == "INTERNAL" for r in caplog.records)


def test_a_request_id_too_long_is_replaced_not_echoed(
    process: GrpcProcess,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        # (gRPC itself refuses other than printable ASCII in a text value.)
        for given in ("r" * 3000, "r" * 129):
            with pytest.raises(grpc.RpcError) as raised:
                stub.SealEvidence(
                    signing_pb2.SealEvidenceRequest(content=b"x"),
                    metadata=((REQUEST_ID_KEY, given),),
                    timeout=5,
                )
            details = raised.value.details() or ""
            assert given not in details and len(details) < 100, details
            trailers = raised.value.trailing_metadata()  # type: ignore[attr-defined]
            echoed = {str(m.key): str(m.value) for m in trailers}[REQUEST_ID_KEY]
            assert echoed != given and len(echoed) == 36  # a fresh UUID


def test_rejections_keep_their_code_and_field(process: GrpcProcess) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        signing_pb2_grpc.SigningServiceStub(channel).WrapKey(
            signing_pb2.WrapKeyRequest(), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "key: must be 32 bytes"
    status = rpc_status.from_call(raised.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("key", "must be 32 bytes")
    ]
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        signing_pb2_grpc.SigningServiceStub(channel).UnwrapKey(
            signing_pb2.UnwrapKeyRequest(), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_turns_not_serving_when_stopping(process: GrpcProcess) -> None:
    address = f"127.0.0.1:{process.port}"
    assert health_status(address, "lre.v1.SigningService") == SERVING
    process.health.enter_graceful_shutdown()
    assert health_status(address, "lre.v1.SigningService") == NOT_SERVING


def _sample(name: str, method: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(
        name,
        {
            "grpc_service": "lre.v1.SigningService",
            "grpc_method": method,
            "grpc_type": "unary",
            **labels,
        },
    )


def test_grpc_metrics_appear_with_their_calls_and_count_each_outcome(
    process: GrpcProcess,
) -> None:
    # Nothing made ahead for a method and code no call ended with (an idle
    # scrape stays small).
    assert _sample("grpc_server_handled_total", "GetCertificateChain", grpc_code="DataLoss") is None
    before = {
        code: _sample("grpc_server_handled_total", method, grpc_code=label) or 0.0
        for method, code, label in (
            ("WrapKey", "INVALID_ARGUMENT", "InvalidArgument"),
            ("SealEvidence", "INTERNAL", "Internal"),
        )
    }
    started = _sample("grpc_server_started_total", "WrapKey") or 0.0
    received = _sample("grpc_server_msg_received_total", "WrapKey") or 0.0
    sent = _sample("grpc_server_msg_sent_total", "WrapKey") or 0.0
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        for _ in range(3):
            with pytest.raises(grpc.RpcError):
                stub.WrapKey(signing_pb2.WrapKeyRequest(), timeout=5)
        with pytest.raises(grpc.RpcError):
            stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=b"x"), timeout=5)
    assert (
        _sample("grpc_server_handled_total", "WrapKey", grpc_code="InvalidArgument")
        == before["INVALID_ARGUMENT"] + 3
    )
    assert (
        _sample("grpc_server_handled_total", "SealEvidence", grpc_code="Internal")
        == before["INTERNAL"] + 1
    )
    assert _sample("grpc_server_started_total", "WrapKey") == started + 3
    assert _sample("grpc_server_msg_received_total", "WrapKey") == received + 3
    assert (_sample("grpc_server_msg_sent_total", "WrapKey") or 0.0) == sent  # no reply was sent
    assert (_sample("grpc_server_handling_seconds_count", "WrapKey") or 0) >= 3


class _Streams(custody_pb2_grpc.CustodyServiceServicer):
    def DepositLetter(self, request_iterator, context):  # type: ignore[no-untyped-def]
        return custody_pb2.Letter(name=f"letters/{sum(1 for _ in request_iterator)}")

    def DownloadLetterContent(self, request, context):  # type: ignore[no-untyped-def]
        for i in range(3):
            yield custody_pb2.ContentChunk(part_index=0, data=bytes([i]))


def test_streaming_rpcs_count_each_message() -> None:
    binding = ServiceBinding(
        "lre.v1.CustodyService",
        custody_pb2_grpc.add_CustodyServiceServicer_to_server,
        _Streams(),  # type: ignore[abstract]
    )
    served = GrpcProcess([binding], "127.0.0.1:0", max_workers=2)
    served.start()

    def sample(name: str, method: str, kind: str) -> float:
        labels = {"grpc_service": "lre.v1.CustodyService", "grpc_method": method, "grpc_type": kind}
        return REGISTRY.get_sample_value(name, labels) or 0.0

    received = sample("grpc_server_msg_received_total", "DepositLetter", "client_stream")
    sent = sample("grpc_server_msg_sent_total", "DownloadLetterContent", "server_stream")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
            stub = custody_pb2_grpc.CustodyServiceStub(channel)
            chunks = (
                custody_pb2.DepositLetterRequest(chunk=custody_pb2.ContentChunk(data=b"x"))
                for _ in range(5)
            )
            assert stub.DepositLetter(chunks, timeout=5).name == "letters/5"
            assert (
                len(
                    list(
                        stub.DownloadLetterContent(
                            custody_pb2.DownloadLetterContentRequest(), timeout=5
                        )
                    )
                )
                == 3
            )
    finally:
        served.stop(grace=1)
    assert (
        sample("grpc_server_msg_received_total", "DepositLetter", "client_stream") == received + 5
    )
    assert (
        sample("grpc_server_msg_sent_total", "DownloadLetterContent", "server_stream") == sent + 3
    )


def test_calls_count_while_at_work_not_while_they_wait_on_the_client() -> None:
    """What the workers give way to (lre.runtime.inflight): a call counts from
    the gate until it ends, however it ends, but not while it waits for its
    client's next message (a stalled client costs no CPU)."""
    at_work, release, first_chunk = threading.Event(), threading.Event(), threading.Event()
    polling, more = threading.Event(), threading.Event()
    seen: list[int] = []

    class Slow(custody_pb2_grpc.CustodyServiceServicer):
        def GetLetter(self, request, context):  # type: ignore[no-untyped-def]
            seen.append(CALLS.count)
            at_work.set()
            release.wait(10)
            raise RuntimeError("ends in error")

        def DownloadLetterContent(self, request, context):  # type: ignore[no-untyped-def]
            yield custody_pb2.ContentChunk(part_index=0, data=b"x")
            with idle():  # a stream waiting for something to send
                polling.set()
                more.wait(10)
            yield custody_pb2.ContentChunk(part_index=0, data=b"x")

        def DepositLetter(self, request_iterator, context):  # type: ignore[no-untyped-def]
            for _ in request_iterator:
                first_chunk.set()
            return custody_pb2.Letter(name="letters/1")

    binding = ServiceBinding(
        "lre.v1.CustodyService",
        custody_pb2_grpc.add_CustodyServiceServicer_to_server,
        Slow(),  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    )
    before = CALLS.count

    def stalling() -> Iterator[custody_pb2.DepositLetterRequest]:
        yield custody_pb2.DepositLetterRequest(chunk=custody_pb2.ContentChunk(data=b"x"))
        more.wait(10)  # the client stalls before its next message

    try:
        with (
            serving(binding, max_workers=12) as served,
            grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        ):
            stub = custody_pb2_grpc.CustodyServiceStub(channel)
            stalled = stub.DepositLetter.future(stalling(), timeout=20)
            assert first_chunk.wait(10)
            time.sleep(0.2)  # the servicer is back waiting for the next message
            assert CALLS.count == before  # waiting on the client: not at work
            # A health watch waits for a change of status all its life: not at work.
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert next(watch).status == SERVING
            assert CALLS.count == before
            # A stream polling for something to send, inside idle(): not at work.
            download = stub.DownloadLetterContent(custody_pb2.DownloadLetterContentRequest())
            next(download)
            assert polling.wait(10)
            assert CALLS.count == before
            unary = stub.GetLetter.future(custody_pb2.GetLetterRequest(name="letters/1"))
            assert at_work.wait(10)
            assert seen == [before + 1]
            release.set()
            with pytest.raises(grpc.RpcError):
                unary.result(timeout=10)
            more.set()
            assert stalled.result(timeout=10).name == "letters/1"
            watch.cancel()
    finally:
        release.set()
        more.set()
    assert CALLS.count == before


def test_a_stop_signal_delivered_to_another_thread_still_stops_the_process() -> None:
    """The kernel may hand SIGTERM to any thread of the process (gRPC's, a PDF
    engine's); Python runs the handler only on the main thread, which must
    not sleep through it."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def deliver_here() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    other = threading.Thread(target=deliver_here)
    try:
        other.start()
        start = time.monotonic()
        assert wait_for_signal() == signal.SIGTERM
        assert time.monotonic() - start < 3
    finally:
        other.join()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
