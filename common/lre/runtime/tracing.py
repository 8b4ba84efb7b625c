"""OpenTelemetry tracing, off unless a process is given an OTLP endpoint
(``tracing_endpoint``; the ``lre-common[tracing]`` extra installs the SDK).

A span per gRPC call served, named ``service/method``, child of the caller's
span when the call carries W3C trace context (``traceparent``); the server
passes its context on to the signer, so one deposit is one trace across both.
Spans carry the method and the status code, never a request's values (no
personal data leaves in a span). Batched and exported over OTLP/gRPC; the
SDK's own variables (``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*``) tune it."""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import grpc

from lre.runtime.config import ConfigError

_tracer: Any = None


def configure(service_name: str, endpoint: str, setting: str) -> None:
    """Tracing to ``endpoint`` (``http://host:4317`` plaintext, ``https://``
    TLS); nothing when it is empty."""
    global _tracer  # one tracer per process, as OpenTelemetry's own
    if not endpoint.strip():
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            f"{setting}: tracing needs OpenTelemetry (install lre-common[tracing])"
        ) from None
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{setting}: an http:// or https:// URL (the OTLP/gRPC collector)")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # What is batched is sent at exit (SIGTERM included: the processes exit normally).
    atexit.register(provider.shutdown)
    _tracer = trace.get_tracer("lre")


@contextlib.contextmanager
def server_span(
    method: str, metadata: Mapping[str, Any], context: grpc.ServicerContext
) -> Iterator[None]:
    """The span of one call served, its parent the caller's (``traceparent``)."""
    if _tracer is None:
        yield
        return
    from opentelemetry import propagate, trace

    service, _, name = method.lstrip("/").rpartition("/")
    parent = propagate.extract({k: v for k, v in metadata.items() if isinstance(v, str)})
    with _tracer.start_as_current_span(
        method.lstrip("/"),
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        # An abort is a status, not an error of ours: set below, by code.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        finally:
            code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                span.set_status(trace.StatusCode.ERROR)


def outgoing() -> tuple[tuple[str, str], ...]:
    """The current trace context as metadata for a call this process makes."""
    if _tracer is None:
        return ()
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())
