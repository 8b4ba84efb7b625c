"""Serving a gRPC process: health per service, reflection, metrics and one
log line per RPC, and a graceful stop on SIGTERM/SIGINT.

Every RPC goes through one scope that holds the error contract of both
processes: the guard (authorization) first, then the request decoded and
validated (INVALID_ARGUMENT, with the field), a bug answered INTERNAL with a
request id, a client that went away recorded as CANCELLED or
DEADLINE_EXCEEDED, and no call waiting on its client beyond the limits of
lre.runtime.limits."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lre.runtime import fields, grpc_metrics, jsonlines
from lre.runtime.grpc_metrics import MethodMetrics
from lre.runtime.limits import Admission, StreamLimits, Watchdog, caller_of
from lre.runtime.status import abort

log = logging.getLogger("lre.rpc")

REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer and how to register it."""

    full_name: str
    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: object


MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024

# Decides whether a call may proceed: returns normally, or aborts the context
# (PERMISSION_DENIED, UNAUTHENTICATED). Given the full method name.
Guard = Callable[[str, grpc.ServicerContext], None]


def _allow_all(_method: str, _context: grpc.ServicerContext) -> None:
    pass


DEADLINE_SLACK_S = 0.5


@dataclass
class _Call:
    """What the scope of one RPC learns along the way."""

    caller: str | None = None
    # Set when this process ended the call for waiting too long on the client.
    timed_out: str | None = None
    reason: str | None = None


def _client_gone_code(context: grpc.ServicerContext, call: _Call) -> grpc.StatusCode | None:
    """CANCELLED or DEADLINE_EXCEEDED when the client is gone (it cancelled,
    its deadline passed, or we cancelled it for idling), else None."""
    if context.is_active():
        return None
    # A client whose deadline passes cancels the call itself, often before
    # our copy of the deadline (later by the time its headers took) expires.
    if call.timed_out is None and context.time_remaining() < DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    # The client sees CANCELLED when the server cancels the call, too.
    return grpc.StatusCode.CANCELLED


@contextlib.contextmanager
def _rpc_scope(
    method: str,
    rid: str,
    context: grpc.ServicerContext,
    metrics: MethodMetrics,
    log_rpc: bool,
    call: _Call,
) -> Iterator[None]:
    """Counts and logs the RPC and turns an unexpected exception into INTERNAL.

    gRPC would answer UNKNOWN with the exception's text; a caller gets neither
    the text nor a stack trace, only the request id to quote to the operator.
    A client that went away (cancelled, past its deadline, or idle too long) is
    no server error: its call is recorded as CANCELLED or DEADLINE_EXCEEDED,
    at INFO, without a traceback.
    """
    token = jsonlines.request_id.set(rid)
    metrics.started.inc()
    start = time.perf_counter()
    gone: grpc.StatusCode | None = None
    try:
        yield
    except Exception:
        # code() exists at run time but not in the stubs.
        if context.code() is None:  # type: ignore[attr-defined]  # not an abort()
            gone = _client_gone_code(context, call)
            if gone is None:  # a bug
                log.exception("unhandled error", extra={"method": method})
                context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
            # Nothing reaches a cancelled client; abort() only records the code
            # and keeps gRPC from logging the exception as the application's.
            context.abort(gone, call.reason or "the client went away")
        raise
    finally:
        elapsed = time.perf_counter() - start
        code = context.code()  # type: ignore[attr-defined]
        code = code or gone or _client_gone_code(context, call) or grpc.StatusCode.OK
        metrics.handled[code].inc()
        metrics.handling.observe(elapsed)
        if log_rpc:
            extra: dict[str, Any] = {
                "method": method,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 3),
            }
            if call.reason:
                extra["reason"] = call.reason
            log.info("rpc", extra=extra)
        jsonlines.request_id.reset(token)


# What every decoded request message goes through: field path to what is
# wrong with it (empty when nothing is). See lre.runtime.fields.
Validator = Callable[[Any], dict[str, str]]


class _Requests:
    """The request messages of one call as the servicer reads them: decoded
    here rather than by gRPC (whose failure would be INTERNAL, uncounted and
    before authorization), validated, and never waited for longer than the
    limits allow."""

    def __init__(
        self,
        raw: Iterator[bytes],
        context: grpc.ServicerContext,
        decode: Callable[[bytes], Any],
        validate: Validator,
        metrics: MethodMetrics,
        call: _Call,
        watchdog: Watchdog,
        limits: StreamLimits,
    ) -> None:
        self._raw = raw
        self._context = context
        self._decode = decode
        self._validate = validate
        self._metrics = metrics
        self._call = call
        self._watchdog = watchdog
        self._idle_s = limits.idle_s
        self._end = time.monotonic() + limits.total_s

    def _expire(self, why: str) -> Callable[[], None]:
        def expire() -> None:
            self._call.timed_out = self._call.reason = why
            self._context.cancel()

        return expire

    def _receive(self) -> bytes:
        now = time.monotonic()
        idle = now + self._idle_s
        until = min(idle, self._end)
        why = "no request message for too long" if idle <= self._end else "the stream took too long"
        with self._watchdog.waiting(until, self._expire(why)):
            raw = next(self._raw)
        self._metrics.received.inc()
        return raw

    def _message(self, raw: bytes) -> Any:
        try:
            message = self._decode(raw)
        except Exception:
            self._call.reason = "undecodable request"
            abort(
                self._context, grpc.StatusCode.INVALID_ARGUMENT, "the request message is malformed"
            )
        problems = self._validate(message)
        if problems:
            self._call.reason = "invalid fields"
            summary = "; ".join(f"{f}: {d}" for f, d in sorted(problems.items()))
            abort(self._context, grpc.StatusCode.INVALID_ARGUMENT, summary, problems)
        return message

    def one(self) -> Any:
        try:
            raw = self._receive()
        except StopIteration:
            abort(self._context, grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        return self._message(raw)

    def __iter__(self) -> _Requests:
        return self

    def __next__(self) -> Any:
        try:
            raw = self._receive()
        except StopIteration:
            # A client that cancels ends the stream as a half-close does, and
            # the cancellation may only be seen after: reading once more tells
            # them apart (a cancelled call raises), so that a servicer never
            # takes a cut stream for a whole one.
            next(self._raw, None)
            raise
        return self._message(raw)


def _identity(raw: bytes) -> bytes:
    return raw


class _RpcInterceptor(grpc.ServerInterceptor):
    """Metrics for every RPC; a log line for every RPC but health checks; the
    guard (authorization) before anything else, then the request decoded and
    validated, under the stream limits.

    Every method is served as a streaming-request handler without a
    deserializer, whatever its kind: gRPC then neither decodes a request nor
    waits for a unary one outside this scope (a client that sends headers and
    then nothing would otherwise hold a thread for ever)."""

    def __init__(
        self,
        methods: dict[str, MethodMetrics],
        log_rpcs: bool,
        guard: Guard,
        validate: Validator,
        limits: StreamLimits,
        admission: Admission,
        watchdog: Watchdog,
    ) -> None:
        self._methods = methods
        self._log_rpcs = log_rpcs
        self._guard = guard
        self._validate = validate
        self._limits = limits
        self._admission = admission
        self._watchdog = watchdog

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        method: str = details.method
        metrics = self._methods.get(method)
        if handler is None or metrics is None:
            return handler
        log_rpc = self._log_rpcs and not method.startswith("/grpc.health.v1.Health/")
        metadata = dict(details.invocation_metadata or ())
        rid = str(metadata.get(REQUEST_ID_KEY) or uuid.uuid4())
        behaviour: Callable[..., Any] | None = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        assert behaviour is not None
        client_streaming = handler.request_streaming
        # A streaming call lasts as long as its client wants: those are capped.
        capped = client_streaming or handler.response_streaming
        decode = handler.request_deserializer or _identity
        guard, validate, limits = self._guard, self._validate, self._limits
        admission, watchdog = self._admission, self._watchdog

        @contextlib.contextmanager
        def opened(raw: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            call = _Call()
            with _rpc_scope(method, rid, context, metrics, log_rpc, call):
                guard(method, context)
                if capped:
                    call.caller = caller_of(context)
                    refused = admission.enter(call.caller)
                    if refused is not None:
                        call.reason = "stream limit"
                        abort(
                            context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"{refused}; retry later"
                        )
                try:
                    requests = _Requests(
                        raw, context, decode, validate, metrics, call, watchdog, limits
                    )
                    yield (requests if client_streaming else requests.one()), call
                finally:
                    if call.caller is not None:
                        admission.leave(call.caller)

        if not handler.response_streaming:

            def unary_response(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                with opened(raw, context) as (request, _call):
                    response = behaviour(request, context)
                    metrics.sent.inc()
                    return response

            return grpc.stream_unary_rpc_method_handler(
                unary_response, response_serializer=handler.response_serializer
            )

        def streaming_response(
            raw: Iterator[bytes], context: grpc.ServicerContext
        ) -> Iterator[Any]:
            with opened(raw, context) as (request, call):
                slow = "the client took no response for too long"

                def expire() -> None:
                    call.timed_out = call.reason = slow
                    context.cancel()

                for response in behaviour(request, context):
                    metrics.sent.inc()
                    # gRPC sends it, waiting on the client's flow control, and
                    # asks for the next one only once it is taken.
                    with watchdog.waiting(time.monotonic() + limits.idle_s, expire):
                        yield response

        return grpc.stream_stream_rpc_method_handler(
            streaming_response, response_serializer=handler.response_serializer
        )


class GrpcProcess:
    """A gRPC server with health and reflection for the given services."""

    def __init__(
        self,
        services: Iterable[ServiceBinding],
        address: str,
        max_workers: int = 16,
        log_rpcs: bool = True,
        guard: Guard = _allow_all,
        credentials: grpc.ServerCredentials | None = None,
        validate: Validator | None = None,
        limits: StreamLimits | None = None,
        health_address: str | None = None,
    ) -> None:
        """``credentials``: TLS (mutual when they demand client certificates);
        None listens in plaintext. ``validate``: the check of every request
        message (lre.runtime.fields; by default its rules for any string).
        ``health_address``: a second, plaintext listener serving grpc.health.v1
        and nothing else, for probes that cannot present a client certificate
        (the kubelet's)."""
        self.services = list(services)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        methods = grpc_metrics.for_services([*(b.full_name for b in self.services), health_name])
        self.limits = limits or StreamLimits()
        streams = max(1, max_workers - self.limits.reserved_threads)
        self._watchdog = Watchdog(tick_s=min(0.25, self.limits.idle_s / 10))
        interceptors: list[grpc.ServerInterceptor] = [
            _RpcInterceptor(
                methods,
                log_rpcs,
                guard,
                validate or fields.validator(),
                self.limits,
                Admission(min(self.limits.per_caller, streams), streams),
                self._watchdog,
            )
        ]
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.so_reuseport", 1),
                # A message carries at most a 1 MiB content chunk and its envelope.
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ],
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for binding in self.services:
            binding.add_to_server(binding.servicer, self.server)
        names = [b.full_name for b in self.services]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {address}")
        # The same health servicer, so both listeners tell the same state; no
        # interceptor, guard or reflection: an unknown method is UNIMPLEMENTED.
        self.health_server: grpc.Server | None = None
        self.health_port: int | None = None
        if health_address:
            self.health_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
                options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 4096)],
            )
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(health_address)
            if self.health_port == 0:
                raise OSError(f"cannot bind gRPC health to {health_address}")

    def set_serving(self, serving: bool, service: str | None = None) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        targets = [service] if service is not None else ["", *(b.full_name for b in self.services)]
        for name in targets:
            self.health.set(name, status)

    def start(self) -> None:
        # What the process built before serving lives as long as it does: out
        # of the collector's full passes, which otherwise walk it all and, under
        # load, stalled every call in the process for 50-85 ms (docs/performance.md).
        gc.freeze()
        self._watchdog.start()
        self.server.start()
        if self.health_server is not None:
            self.health_server.start()

    def stop(self, grace: float, drain: float = 0.0) -> None:
        """NOT_SERVING for ``drain`` seconds while still taking calls, so that
        load balancers that check health move away; then no new calls, and
        ``grace`` seconds for those in flight to finish."""
        self.health.enter_graceful_shutdown()
        time.sleep(drain)
        self.server.stop(grace).wait()
        self._watchdog.stop()
        if self.health_server is not None:
            self.health_server.stop(0).wait()


def wait_for_signal() -> int:
    """Blocks until SIGTERM or SIGINT; returns the signal number."""
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    while not done.wait(3600):
        pass
    return received[0]
