"""Domain errors to gRPC status codes, in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from sqlalchemy.exc import DBAPIError

from lre.runtime.status import abort
from lre.server.domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    AuthenticationRequired,
    DependencyUnavailable,
    DepositRefused,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    TooManyCalls,
    WriteConflict,
)

CODES: list[tuple[type[DomainError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (AuthenticationFailed, grpc.StatusCode.UNAUTHENTICATED),
    (AuthenticationRequired, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (TooManyAttempts, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TooManyCalls, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DepositRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (DependencyUnavailable, grpc.StatusCode.UNAVAILABLE),
    (WriteConflict, grpc.StatusCode.ABORTED),
]


@contextlib.contextmanager
def domain_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Aborts the RPC with the code of a domain error, its message and field."""
    try:
        yield
    except DomainError as exc:
        code = next(code for kind, code in CODES if isinstance(exc, kind))
        field = getattr(exc, "field", None)
        message = f"{field}: {exc}" if field else str(exc)
        metadata = {"field": field} if field else {}
        if isinstance(exc, DepositRefused):
            # The code its SubmissionRejection evidence carries, and that evidence's letter.
            metadata["reasonCode"] = exc.code
            if exc.letter:
                metadata["letter"] = exc.letter
        info = (exc.reason, metadata)
        retry_after = exc.retry_after if isinstance(exc, TooManyAttempts | TooManyCalls) else None
        abort(context, code, message, {field: str(exc)} if field else None, info, retry_after)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The database dropped the connection (restart, failover); the pool
        # reconnects on the next request, so the caller may retry.
        abort(
            context,
            grpc.StatusCode.UNAVAILABLE,
            "the database is unavailable; retry",
            error_info=("DATABASE_UNAVAILABLE", {}),
        )
