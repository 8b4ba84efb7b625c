"""lre.runtime.serving's error contract, over a real gRPC server with stand-in
servicers: undecodable and invalid requests, clients that go away, clients
that stall, and the threads every other caller keeps meanwhile."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client import REGISTRY

from lre.runtime.limits import StreamLimits
from lre.runtime.serving import GrpcProcess, ServiceBinding
from lre.runtime.status import abort
from lre.v1 import custody_pb2, custody_pb2_grpc
from tests.support.rpc import SERVING, field_violations, health_status

CUSTODY = "lre.v1.CustodyService"
IDLE_S = 0.6


class _Custody(custody_pb2_grpc.CustodyServiceServicer):
    """DepositLetter reads the whole stream; GetLetter echoes the name."""

    def __init__(self) -> None:
        self.open = 0  # deposits being read now: what a stalled client holds
        self.lock = threading.Lock()

    def DepositLetter(self, request_iterator, context):  # type: ignore[no-untyped-def]
        with self.lock:
            self.open += 1
        try:
            return custody_pb2.Letter(name=f"letters/{sum(1 for _ in request_iterator)}")
        finally:
            with self.lock:
                self.open -= 1

    def GetLetter(self, request, context):  # type: ignore[no-untyped-def]
        return custody_pb2.Letter(name=request.name)

    def DownloadLetterContent(self, request, context):  # type: ignore[no-untyped-def]
        with self.lock:
            self.open += 1
        try:
            for _ in range(400):  # 25 MiB: more than any flow-control window holds
                yield custody_pb2.ContentChunk(data=b"x" * 65536)
        finally:
            with self.lock:
                self.open -= 1


def _deny_set_legal_hold(method: str, context: grpc.ServicerContext) -> None:
    if method.endswith("/SetLegalHold"):
        abort(context, grpc.StatusCode.PERMISSION_DENIED, "auditor may not call SetLegalHold")


@pytest.fixture
def served() -> Iterator[tuple[GrpcProcess, _Custody]]:
    servicer = _Custody()  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    binding = ServiceBinding(
        CUSTODY,
        custody_pb2_grpc.add_CustodyServiceServicer_to_server,
        servicer,  # the rest answer UNIMPLEMENTED
    )
    process = GrpcProcess(
        [binding],
        "127.0.0.1:0",
        max_workers=8,
        guard=_deny_set_legal_hold,
        limits=StreamLimits(idle_s=IDLE_S, total_s=3.0, per_caller=3, reserved_threads=2),
    )
    process.set_serving(True)
    process.start()
    yield process, servicer
    process.stop(grace=1)


def _handled(method: str, code: str, kind: str = "unary") -> float:
    labels = {"grpc_service": CUSTODY, "grpc_method": method, "grpc_type": kind, "grpc_code": code}
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


def _raw(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(f"/{CUSTODY}/{method}", lambda b: b, lambda b: b)


def _raw_stream(channel: grpc.Channel) -> grpc.StreamUnaryMultiCallable[bytes, bytes]:
    return channel.stream_unary(f"/{CUSTODY}/DepositLetter", lambda b: b, lambda b: b)


def _envelope(filename: str = "a.pdf") -> custody_pb2.DepositLetterRequest:
    return custody_pb2.DepositLetterRequest(
        envelope=custody_pb2.LetterEnvelope(
            request_id="r", parts=[custody_pb2.ContentPart(filename=filename, media_type="x/y")]
        )
    )


MALFORMED = b"\x0a\xff\xff\xff"  # field 1, length-delimited, a length past the end


def test_undecodable_unary_request_is_invalid_argument_counted_and_logged_without_traceback(
    served: tuple[GrpcProcess, _Custody], caplog: pytest.LogCaptureFixture
) -> None:
    process, _ = served
    before = _handled("GetLetter", "InvalidArgument")
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        caplog.at_level(logging.INFO),
        pytest.raises(grpc.RpcError) as raised,
    ):
        _raw(channel, "GetLetter")(MALFORMED, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _handled("GetLetter", "InvalidArgument") == before + 1
    (line,) = [r for r in caplog.records if getattr(r, "method", "").endswith("/GetLetter")]
    assert line.levelno == logging.INFO and line.exc_info is None
    assert line.code == "INVALID_ARGUMENT" and line.reason == "undecodable request"  # type: ignore[attr-defined]
    assert not any(r.exc_info for r in caplog.records)


def test_undecodable_message_inside_a_client_stream_is_invalid_argument(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, _ = served
    before = _handled("DepositLetter", "InvalidArgument", "client_stream")
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        _raw_stream(channel)(iter([_envelope().SerializeToString(), MALFORMED]), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _handled("DepositLetter", "InvalidArgument", "client_stream") == before + 1


def test_a_caller_without_the_role_is_denied_before_its_bytes_are_read(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, _ = served
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        _raw(channel, "SetLegalHold")(MALFORMED, timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00.pdf", "must not contain control characters"),
        ("a\r\nBcc: x@example.org", "must not contain control characters"),
        ("\u202egpj.exe", "must not contain control characters"),
        ("x" * 1025, "at most 1024 characters"),
    ],
)
def test_strings_anywhere_in_a_request_are_checked_and_the_field_named(
    served: tuple[GrpcProcess, _Custody], value: str, problem: str
) -> None:
    process, servicer = served
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        custody_pb2_grpc.CustodyServiceStub(channel).DepositLetter(
            iter([_envelope(value)]), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == {"envelope.parts[0].filename": problem}
    assert value not in (raised.value.details() or "")  # the value is not echoed
    assert servicer.open == 0


def _stalled(first: bytes, release: threading.Event) -> Iterator[bytes]:
    yield first
    release.wait(30)


def test_a_client_that_cancels_its_stream_is_cancelled_not_internal(
    served: tuple[GrpcProcess, _Custody], caplog: pytest.LogCaptureFixture
) -> None:
    process, servicer = served
    before = {c: _handled("DepositLetter", c, "client_stream") for c in ("Canceled", "Internal")}
    release = threading.Event()
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        caplog.at_level(logging.INFO),
    ):
        future = _raw_stream(channel).future(_stalled(_envelope().SerializeToString(), release))
        assert _wait(lambda: servicer.open == 1)
        future.cancel()
        assert _wait(
            lambda: _handled("DepositLetter", "Canceled", "client_stream") > before["Canceled"]
        ), [(r.__dict__.get("code"), r.__dict__.get("reason")) for r in caplog.records]
        release.set()
    assert _handled("DepositLetter", "Internal", "client_stream") == before["Internal"]
    assert servicer.open == 0
    assert not any(r.exc_info or r.levelno > logging.INFO for r in caplog.records)


def test_a_client_whose_deadline_passes_is_deadline_exceeded(
    served: tuple[GrpcProcess, _Custody], caplog: pytest.LogCaptureFixture
) -> None:
    process, _ = served
    before = _handled("DepositLetter", "DeadlineExceeded", "client_stream")
    release = threading.Event()
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        caplog.at_level(logging.INFO),
        pytest.raises(grpc.RpcError) as raised,
    ):
        _raw_stream(channel)(_stalled(_envelope().SerializeToString(), release), timeout=0.3)
    release.set()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _wait(
        lambda: _handled("DepositLetter", "DeadlineExceeded", "client_stream") == before + 1
    )
    assert not any(r.exc_info or r.levelno > logging.INFO for r in caplog.records)


def test_a_stream_idle_past_the_limit_is_ended_and_its_resources_released(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, servicer = served
    before = _handled("DepositLetter", "Canceled", "client_stream")
    release = threading.Event()
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            _raw_stream(channel)(_stalled(_envelope().SerializeToString(), release), timeout=20)
        took = time.monotonic() - start
        release.set()
    assert raised.value.code() == grpc.StatusCode.CANCELLED
    assert IDLE_S <= took < IDLE_S + 2
    assert _wait(lambda: servicer.open == 0)
    assert _handled("DepositLetter", "Canceled", "client_stream") == before + 1


def test_a_unary_call_whose_message_never_comes_is_ended(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    """Headers and then nothing: gRPC itself would wait for ever on a thread."""
    process, _ = served
    release = threading.Event()
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        headers_only = channel.stream_unary(f"/{CUSTODY}/GetLetter", lambda b: b, lambda b: b)
        with pytest.raises(grpc.RpcError) as raised:
            headers_only(_never(release), timeout=20)
        release.set()
    assert raised.value.code() == grpc.StatusCode.CANCELLED


def _never(release: threading.Event) -> Iterator[bytes]:
    release.wait(30)
    yield from ()


def test_a_stream_longer_than_the_total_limit_is_ended(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, servicer = served

    def trickle() -> Iterator[custody_pb2.DepositLetterRequest]:
        yield _envelope()
        for _ in range(40):  # one message every 0.2 s: never idle, never done
            time.sleep(0.2)
            yield custody_pb2.DepositLetterRequest(chunk=custody_pb2.ContentChunk(data=b"x"))

    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            custody_pb2_grpc.CustodyServiceStub(channel).DepositLetter(trickle(), timeout=20)
    assert raised.value.code() == grpc.StatusCode.CANCELLED
    assert 3.0 <= time.monotonic() - start < 5.5
    assert _wait(lambda: servicer.open == 0)


def test_stalled_streams_are_capped_and_everyone_else_is_served_meanwhile(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, servicer = served
    release = threading.Event()
    address = f"127.0.0.1:{process.port}"
    before = _handled("DepositLetter", "ResourceExhausted", "client_stream")
    with grpc.insecure_channel(address) as channel:
        deposit = _raw_stream(channel)
        futures = [
            deposit.future(_stalled(_envelope().SerializeToString(), release), timeout=20)
            for _ in range(20)
        ]
        assert _wait(lambda: servicer.open == 3 and sum(f.done() for f in futures) == 17)
        refused = [f for f in futures if f.done()]
        assert len(refused) == 17
        assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert _handled("DepositLetter", "ResourceExhausted", "client_stream") == before + 17
        # While three streams stall: health and unary calls answered at once.
        stub = custody_pb2_grpc.CustodyServiceStub(channel)
        for i in range(10):
            start = time.monotonic()
            assert health_status(address, CUSTODY, timeout=1) == SERVING
            name = stub.GetLetter(custody_pb2.GetLetterRequest(name=f"letters/{i}"), timeout=1).name
            assert name == f"letters/{i}"
            assert time.monotonic() - start < 0.5
        # The idle limit ends the stalled ones and gives their places back.
        assert _wait(lambda: servicer.open == 0, timeout=IDLE_S + 3)
        release.set()
        letter = custody_pb2_grpc.CustodyServiceStub(channel).DepositLetter(
            iter([_envelope()]), timeout=5
        )
        assert letter.name == "letters/1"


def _wait(predicate, timeout: float = 5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_stops_reading_a_response_stream_is_ended(
    served: tuple[GrpcProcess, _Custody],
) -> None:
    process, servicer = served
    before = _handled("DownloadLetterContent", "Canceled", "server_stream")
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        replies = custody_pb2_grpc.CustodyServiceStub(channel).DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name="letters/x"), timeout=20
        )
        next(replies)  # then reads no more
        assert _wait(lambda: servicer.open == 1)
        assert _wait(lambda: servicer.open == 0, timeout=IDLE_S + 3)
        assert _handled("DownloadLetterContent", "Canceled", "server_stream") == before + 1
        with pytest.raises(grpc.RpcError) as raised:
            list(replies)
    assert raised.value.code() == grpc.StatusCode.CANCELLED
