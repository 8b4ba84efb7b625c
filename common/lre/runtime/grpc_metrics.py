"""gRPC server metrics under the names every gRPC dashboard knows
(go-grpc-prometheus): started, handled by code, handling time, messages."""

from __future__ import annotations

import functools

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import Counter, Histogram

_LABELS = ["grpc_type", "grpc_service", "grpc_method"]

STARTED = Counter("grpc_server_started", "RPCs started on the server.", _LABELS)
HANDLED = Counter(
    "grpc_server_handled", "RPCs completed on the server, by status code.", [*_LABELS, "grpc_code"]
)
HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status.",
    _LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECEIVED = Counter("grpc_server_msg_received", "Messages received from clients.", _LABELS)
SENT = Counter("grpc_server_msg_sent", "Messages sent to clients.", _LABELS)


# grpc_code values as gRPC's own string form (codes.Code.String() in Go),
# which existing dashboards and alerts match on: "OK", "InvalidArgument", ...
CODE_NAMES = {
    code: "Canceled"
    if code is grpc.StatusCode.CANCELLED
    else "OK"
    if code is grpc.StatusCode.OK
    else "".join(part.capitalize() for part in code.name.split("_"))
    for code in grpc.StatusCode
}


def rpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming:
        return "bidi_stream" if server_streaming else "client_stream"
    return "server_stream" if server_streaming else "unary"


class MethodMetrics:
    """The label children of one method, each made when first used: series
    made ahead for every method and status code would fill an idle scrape
    (hundreds of kilobytes) with zeros."""

    def __init__(self, kind: str, service: str, method: str) -> None:
        self._labels = (kind, service, method)
        self._handled: dict[grpc.StatusCode, Counter] = {}

    @classmethod
    def of(cls, kind: str, service: str, method: str) -> MethodMetrics:
        return cls(kind, service, method)

    @functools.cached_property
    def started(self) -> Counter:
        return STARTED.labels(*self._labels)

    @functools.cached_property
    def received(self) -> Counter:
        return RECEIVED.labels(*self._labels)

    @functools.cached_property
    def sent(self) -> Counter:
        return SENT.labels(*self._labels)

    @functools.cached_property
    def handling(self) -> Histogram:
        return HANDLING.labels(*self._labels)

    def handled(self, code: grpc.StatusCode) -> Counter:
        found = self._handled.get(code)
        if found is None:
            # labels() returns the one child however many threads ask.
            found = self._handled.setdefault(code, HANDLED.labels(*self._labels, CODE_NAMES[code]))
        return found


def for_services(full_names: list[str]) -> dict[str, MethodMetrics]:
    """Every method of these services, keyed by '/service/method'; their
    series appear with their first call (an absent series reads as no
    traffic: the error-ratio alerts divide by the calls made)."""
    pool = descriptor_pool.Default()
    methods = {}
    for name in full_names:
        for method in pool.FindServiceByName(name).methods:
            kind = rpc_type(method.client_streaming, method.server_streaming)
            methods[f"/{name}/{method.name}"] = MethodMetrics.of(kind, name, method.name)
    return methods
