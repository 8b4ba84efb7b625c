"""Canonical gRPC errors with google.rpc details (AIP-193)."""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from lre.runtime import jsonlines

# google.rpc.ErrorInfo.domain of every error this product raises.
DOMAIN = "lre"


# What a refusal says when its caller names no narrower cause.
GENERIC_REASONS = {
    grpc.StatusCode.INVALID_ARGUMENT: "INVALID_FIELD",
    grpc.StatusCode.UNAVAILABLE: "UNAVAILABLE",
}


def abort(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    field_violations: dict[str, str] | None = None,
    error_info: tuple[str, dict[str, str]] | None = None,
    retry_after: float | None = None,
) -> NoReturn:
    """Aborts the RPC with ``code``; field violations travel as google.rpc.BadRequest,
    a machine-readable reason and its metadata as google.rpc.ErrorInfo (every
    refusal has one: a client switches on ``reason``, never on the message),
    when to retry as google.rpc.RetryInfo."""
    if error_info is None:
        error_info = (GENERIC_REASONS.get(code, code.name), {})
    details = []
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromSeconds(max(1, int(retry_after + 0.999)))
        detail = any_pb2.Any()
        detail.Pack(retry)
        details.append(detail)
    if field_violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in field_violations.items()
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        details.append(detail)
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(reason=error_info[0], domain=DOMAIN, metadata=error_info[1])
    )
    details.append(detail)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    rich = rpc_status.to_status(status)
    rid = jsonlines.request_id.get()
    if rid:  # the id the gate put in the trailers, which the rich status replaces
        from lre.runtime.gate import REQUEST_ID_KEY  # the gate imports this module

        rich = rich._replace(trailing_metadata=(*rich.trailing_metadata, (REQUEST_ID_KEY, rid)))
    context.abort_with_status(rich)
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def invalid_argument(context: grpc.ServicerContext, field: str, description: str) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field}: {description}",
        {field: description},
        ("INVALID_FIELD", {"field": field}),
    )
