"""The scope of one RPC: counted, logged, a bug answered INTERNAL with a
request id, a client that went away recorded as CANCELLED or
DEADLINE_EXCEEDED; and its request messages decoded, validated and never
waited for longer than the limits allow."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from lre.runtime import jsonlines
from lre.runtime.grpc_metrics import MethodMetrics
from lre.runtime.inflight import CALLS, InFlight
from lre.runtime.limits import Watchdog
from lre.runtime.status import abort

log = logging.getLogger("lre.rpc")

DEADLINE_SLACK_S = 0.5


@dataclass
class Call:
    """What the scope of one RPC learns along the way."""

    caller: str | None = None
    # Set when this process ended the call for waiting too long on the client.
    timed_out: str | None = None
    reason: str | None = None


def client_gone_code(context: grpc.ServicerContext, call: Call) -> grpc.StatusCode | None:
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


# Read-only methods a peer polls (the server reads the signer's certificate
# chains with each health look, every few seconds): one INFO line per poll
# would be most of an idle stack's log. A success is logged at DEBUG; any
# other outcome as every call's.
QUIET_WHEN_OK = frozenset({"/lre.v1.SigningService/GetCertificateChain"})


@contextlib.contextmanager
def rpc_scope(
    method: str,
    rid: str,
    context: grpc.ServicerContext,
    metrics: MethodMetrics,
    log_rpc: bool,
    call: Call,
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
            gone = client_gone_code(context, call)
            if gone is None:  # a bug
                log.exception("unhandled error", extra={"method": method})
                abort(
                    context,
                    grpc.StatusCode.INTERNAL,
                    f"internal error (request id {rid})",
                    error_info=("INTERNAL", {"requestId": rid}),
                )
            # Nothing reaches a cancelled client; abort() only records the code
            # and keeps gRPC from logging the exception as the application's.
            context.abort(gone, call.reason or "the client went away")
        raise
    finally:
        elapsed = time.perf_counter() - start
        code = context.code()  # type: ignore[attr-defined]
        code = code or gone or client_gone_code(context, call) or grpc.StatusCode.OK
        metrics.handled(code).inc()
        metrics.handling.observe(elapsed)
        if log_rpc:
            extra: dict[str, Any] = {
                "method": method,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 3),
            }
            if call.reason:
                extra["reason"] = call.reason
            quiet = code is grpc.StatusCode.OK and method in QUIET_WHEN_OK
            log.log(logging.DEBUG if quiet else logging.INFO, "rpc", extra=extra)
        jsonlines.request_id.reset(token)


# What every decoded request message goes through: field path to what is
# wrong with it (empty when nothing is). See lre.runtime.fields.
Validator = Callable[[Any], dict[str, str]]


class Requests:
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
        call: Call,
        watchdog: Watchdog,
        idle_s: float,
        end: float,
        at_work: InFlight = CALLS,
    ) -> None:
        """``end``: when (time.monotonic()) the whole call must be over;
        ``at_work``: the count the call leaves while it waits for a message."""
        self._raw = raw
        self._context = context
        self._decode = decode
        self._validate = validate
        self._metrics = metrics
        self._call = call
        self._watchdog = watchdog
        self._idle_s = idle_s
        self._end = end
        self._at_work = at_work

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
        with self._watchdog.waiting(until, self._expire(why)), self._at_work.waiting():
            raw = next(self._raw)
        self._metrics.received.inc()
        return raw

    def _message(self, raw: bytes) -> Any:
        try:
            message = self._decode(raw)
        except Exception:
            self._call.reason = "undecodable request"
            abort(
                self._context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the request message is malformed",
                error_info=("MALFORMED_REQUEST", {}),
            )
        problems = self._validate(message)
        if problems:
            self._call.reason = "invalid fields"
            summary = "; ".join(f"{f}: {d}" for f, d in sorted(problems.items()))
            abort(
                self._context,
                grpc.StatusCode.INVALID_ARGUMENT,
                summary,
                problems,
                ("INVALID_FIELD", {"field": min(problems)}),
            )
        return message

    def one(self, stalled: contextlib.AbstractContextManager[None]) -> Any:
        """The one request message of a unary-request call; ``stalled`` is
        held while it is awaited (the gate counts a client that keeps it
        waiting)."""
        try:
            with stalled:
                raw = self._receive()
        except StopIteration:
            abort(
                self._context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "no request message",
                error_info=("MISSING_REQUEST", {}),
            )
        return self._message(raw)

    def __iter__(self) -> Requests:
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
