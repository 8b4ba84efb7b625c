"""The one admission gate every RPC of a process passes, its services',
health's and reflection's alike: the guard (authorization), then the
budgets of long calls (lre.runtime.limits), then the request decoded and
validated, under idle and total limits. What it refuses is logged and
counted by role and method (``lre_rpc_refused_total``), never by caller."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import Counter

from lre.runtime import tracing
from lre.runtime.calls import Call, Requests, Validator, rpc_scope
from lre.runtime.denylist import DenyList
from lre.runtime.grpc_metrics import MethodMetrics, rpc_type
from lre.runtime.inflight import CALLS, InFlight, counted_as
from lre.runtime.limits import Admission, Kind, StreamLimits, Ticket, Watchdog, caller_of, user_of
from lre.runtime.status import abort

log = logging.getLogger("lre.rpc")

REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID = 128


def request_id(given: object) -> str:
    """The caller's request id, logged and echoed: kept when it is printable
    ASCII of at most MAX_REQUEST_ID characters, else a new one (a 3 KB or
    binary value would be logged and echoed as it came)."""
    text = given if isinstance(given, str) else ""
    if 0 < len(text) <= MAX_REQUEST_ID and text.isascii() and text.isprintable():
        return text
    return str(uuid.uuid4())


HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."

REFUSED = Counter(
    "lre_rpc_refused",
    "Calls the admission gate refused, by the caller's role, the method and the budget.",
    ["role", "grpc_service", "grpc_method", "budget"],
)

# Decides whether a call may proceed: returns normally, or aborts the context
# (PERMISSION_DENIED, UNAUTHENTICATED). Given the full method name.
Guard = Callable[[str, grpc.ServicerContext], None]
# The caller's role as a metric label: a few values at most, never a name.
RoleOf = Callable[[grpc.ServicerContext], str]


def _identity(raw: bytes) -> bytes:
    return raw


def kind_of(method: str, client_streaming: bool, server_streaming: bool) -> Kind | None:
    """The budget a call is counted in while it lasts; None for a unary call."""
    if method.startswith(REFLECTION_PREFIX):
        return Kind.REFLECTION
    if method == HEALTH_PREFIX + "Watch":
        return Kind.WATCH
    if client_streaming:
        return Kind.UPLOAD
    if server_streaming:
        return Kind.DOWNLOAD
    return None


class RpcInterceptor(grpc.ServerInterceptor):
    """Metrics for every RPC; a log line for every RPC but health checks; the
    guard before anything else, then admission, then the request decoded and
    validated, under the stream limits.

    Every method is served as a streaming-request handler without a
    deserializer, whatever its kind: gRPC then neither decodes a request nor
    waits for a unary one outside this scope (a client that sends headers and
    then nothing would otherwise hold a thread for ever). A method this
    process registers but that has no metrics yet (reflection) gets them
    here: nothing registered escapes the gate."""

    def __init__(
        self,
        methods: dict[str, MethodMetrics],
        log_rpcs: bool,
        guard: Guard,
        validate: Validator,
        limits: StreamLimits,
        admission: Admission,
        watchdog: Watchdog,
        role_of: RoleOf,
        deny: DenyList | None = None,
    ) -> None:
        self._deny = deny
        self._methods = methods
        self._log_rpcs = log_rpcs
        self._guard = guard
        self._validate = validate
        self._limits = limits
        self._admission = admission
        self._watchdog = watchdog
        self._role_of = role_of
        self._lock = threading.Lock()
        self._handlers: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def _metrics(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> MethodMetrics:
        found = self._methods.get(method)
        if found is None:
            service, _, name = method.lstrip("/").rpartition("/")
            kind = rpc_type(handler.request_streaming, handler.response_streaming)
            with self._lock:
                found = self._methods.setdefault(method, MethodMetrics.of(kind, service, name))
        return found

    def _refuse(
        self, context: grpc.ServicerContext, call: Call, method: str, budget: str, kind: Kind
    ) -> None:
        role = self._role_of(context)
        service, _, name = method.lstrip("/").rpartition("/")
        REFUSED.labels(role, service, name, budget).inc()
        call.reason = f"{kind.value} budget ({budget})"
        log.warning(
            "rpc refused",
            extra={"method": method, "role": role, "kind": kind.value, "budget": budget},
        )
        what = {
            "caller": "this caller has",
            "user": "this user has",
            "class": "the service has",
            "all": "the service has",
        }[budget]
        abort(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{what} too many {kind.value} calls in progress; retry later",
            error_info=("CONCURRENT_CALLS_EXCEEDED", {"budget": budget, "kind": kind.value}),
        )

    def _denied(self, context: grpc.ServicerContext, call: Call, method: str) -> None:
        role = self._role_of(context)
        service, _, name = method.lstrip("/").rpartition("/")
        REFUSED.labels(role, service, name, "denied").inc()
        call.reason = "denied certificate"
        log.warning("rpc refused", extra={"method": method, "role": role, "budget": "denied"})
        abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            "this client certificate is denied",
            error_info=("CERTIFICATE_DENIED", {}),
        )

    @contextlib.contextmanager
    def _stall_watch(
        self, context: grpc.ServicerContext, call: Call, caller: str, user: str
    ) -> Iterator[None]:
        """While a unary call waits for its request message: past
        ``stalled_after_s`` it counts as a long call of its caller, and is cut
        when that is beyond a budget."""
        held: list[Ticket] = []
        lock = threading.Lock()

        def stalled() -> None:
            with lock:
                ticket, budget = self._admission.enter(Kind.STALLED, caller, user)
                if ticket is not None:
                    held.append(ticket)
                    return
            call.timed_out = call.reason = f"stalled request ({budget} budget)"
            context.cancel()

        limits = self._limits
        try:
            with self._admission.waiting(caller) as waiting:
                # A client's request message arrives with its headers: a few
                # calls of one caller caught in between are normal, more are not.
                grace = limits.stalled_after_s
                if waiting > max(1, limits.reserved_threads // 2):
                    grace /= 10
                with self._watchdog.waiting(time.monotonic() + grace, stalled):
                    yield
        finally:
            with lock:
                for ticket in held:
                    self._admission.leave(ticket)
                held.clear()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        # gRPC asks for every call; what wraps a method's handler is built once
        # (the registered handlers never change: only what a process
        # registers reaches here, so the cache is as small as the API).
        cached = self._handlers.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._handlers[method] = (handler, self._gated(method, handler))
        return cached[1]

    def _gated(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The handler every call of ``method`` runs: the gate around ``handler``."""
        metrics = self._metrics(method, handler)
        log_rpc = self._log_rpcs and not method.startswith(HEALTH_PREFIX)
        behaviour: Callable[..., Any] | None = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        assert behaviour is not None
        client_streaming = handler.request_streaming
        kind = kind_of(method, client_streaming, handler.response_streaming)
        decode = handler.request_deserializer or _identity
        limits = self._limits
        total_s = limits.watch_total_s if kind is Kind.WATCH else limits.total_s
        # A health watch spends its life waiting for a change of status, not
        # at work: it is counted apart, where nothing reads it.
        at_work = InFlight() if kind is Kind.WATCH else CALLS

        @contextlib.contextmanager
        def opened(raw: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            call = Call()
            metadata = dict(context.invocation_metadata() or ())
            rid = request_id(metadata.get(REQUEST_ID_KEY))
            user = user_of(metadata)
            with (
                # At work until it ends, but for its waits on the client
                # (Requests, and the responses below): what workers give way to.
                counted_as(at_work),
                tracing.server_span(method, metadata, context),
                rpc_scope(method, rid, context, metrics, log_rpc, call),
            ):
                # The caller gets the id to quote, refused or not: in the
                # trailers (headers sent now would commit the call, and a
                # client could no longer retry it elsewhere when this process
                # dies mid-call); lre.runtime.status keeps it beside a rich error.
                context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
                if self._deny is not None and self._deny.denied(context):
                    self._denied(context, call, method)
                self._guard(method, context)
                call.caller = caller_of(context)
                ticket: Ticket | None = None
                if kind is not None:
                    ticket, budget = self._admission.enter(kind, call.caller, user)
                    if ticket is None:
                        self._refuse(context, call, method, budget, kind)
                end = time.monotonic() + total_s

                def expire() -> None:
                    call.timed_out = call.reason = "the stream took too long"
                    context.cancel()

                try:
                    with self._watchdog.waiting(end, expire) if kind else contextlib.nullcontext():
                        requests = Requests(
                            raw,
                            context,
                            decode,
                            self._validate,
                            metrics,
                            call,
                            self._watchdog,
                            limits.idle_s,
                            end,
                            at_work,
                        )
                        if client_streaming:
                            yield requests, call
                        else:
                            waiting = (
                                contextlib.nullcontext()
                                if kind
                                else self._stall_watch(context, call, call.caller, user)
                            )
                            yield requests.one(waiting), call
                finally:
                    if ticket is not None:
                        self._admission.leave(ticket)

        if not handler.response_streaming:

            def unary_response(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                with opened(raw, context) as (request, _call):
                    response = behaviour(request, context)
                    metrics.sent.inc()
                    return response

            return grpc.stream_unary_rpc_method_handler(
                unary_response, response_serializer=handler.response_serializer
            )

        watchdog = self._watchdog

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
                    with (
                        watchdog.waiting(time.monotonic() + limits.idle_s, expire),
                        at_work.waiting(),
                    ):
                        yield response

        return grpc.stream_stream_rpc_method_handler(
            streaming_response, response_serializer=handler.response_serializer
        )
