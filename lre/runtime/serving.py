"""Serving a gRPC process: health per service, reflection, metrics and one
log line per RPC, and a graceful stop on SIGTERM/SIGINT."""

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

from lre.runtime import grpc_metrics, jsonlines
from lre.runtime.grpc_metrics import MethodMetrics

log = logging.getLogger("lre.rpc")

REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer and how to register it."""

    full_name: str
    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: object


@contextlib.contextmanager
def _rpc_scope(
    method: str, rid: str, context: grpc.ServicerContext, metrics: MethodMetrics, log_rpc: bool
) -> Iterator[None]:
    """Counts and logs the RPC and turns an unexpected exception into INTERNAL.

    gRPC would answer UNKNOWN with the exception's text; a caller gets neither
    the text nor a stack trace, only the request id to quote to the operator.
    """
    token = jsonlines.request_id.set(rid)
    metrics.started.inc()
    start = time.perf_counter()
    try:
        yield
    except Exception:
        # code() exists at run time but not in the stubs.
        if context.code() is None:  # type: ignore[attr-defined]  # not an abort(): a bug
            log.exception("unhandled error", extra={"method": method})
            context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
        raise
    finally:
        elapsed = time.perf_counter() - start
        code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
        metrics.handled[code].inc()
        metrics.handling.observe(elapsed)
        if log_rpc:
            log.info(
                "rpc",
                extra={
                    "method": method,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
        jsonlines.request_id.reset(token)


def _counted(messages: Iterator[Any], counter: Any) -> Iterator[Any]:
    for message in messages:
        counter.inc()
        yield message


MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024

# Decides whether a call may proceed: returns normally, or aborts the context
# (PERMISSION_DENIED, UNAUTHENTICATED). Given the full method name.
Guard = Callable[[str, grpc.ServicerContext], None]


def _allow_all(_method: str, _context: grpc.ServicerContext) -> None:
    pass


class _RpcInterceptor(grpc.ServerInterceptor):
    """Metrics for every RPC; a log line for every RPC but health checks; the
    guard (authorization) before every handler."""

    def __init__(self, methods: dict[str, MethodMetrics], log_rpcs: bool, guard: Guard) -> None:
        self._methods = methods
        self._log_rpcs = log_rpcs
        self._guard = guard

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
        guard = self._guard
        metadata = dict(details.invocation_metadata or ())
        rid = str(metadata.get(REQUEST_ID_KEY) or uuid.uuid4())

        def unary_response(
            behaviour: Callable[..., Any], streaming_request: bool
        ) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                with _rpc_scope(method, rid, context, metrics, log_rpc):
                    guard(method, context)
                    if streaming_request:
                        request = _counted(request, metrics.received)
                    else:
                        metrics.received.inc()
                    response = behaviour(request, context)
                    metrics.sent.inc()
                    return response

            return call

        def streaming_response(
            behaviour: Callable[..., Any], streaming_request: bool
        ) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with _rpc_scope(method, rid, context, metrics, log_rpc):
                    guard(method, context)
                    if streaming_request:
                        request = _counted(request, metrics.received)
                    else:
                        metrics.received.inc()
                    yield from _counted(behaviour(request, context), metrics.sent)

            return call

        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary, False), **codec
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary, True), **codec
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                streaming_response(handler.unary_stream, False), **codec
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            streaming_response(handler.stream_stream, True), **codec
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
        health_address: str | None = None,
    ) -> None:
        """``credentials``: TLS (mutual when they demand client certificates);
        None listens in plaintext. ``health_address``: a second, plaintext
        listener serving grpc.health.v1 and nothing else, for probes that
        cannot present a client certificate (the kubelet's)."""
        self.services = list(services)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        methods = grpc_metrics.for_services([*(b.full_name for b in self.services), health_name])
        interceptors: list[grpc.ServerInterceptor] = [_RpcInterceptor(methods, log_rpcs, guard)]
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
