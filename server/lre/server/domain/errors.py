"""The domain's one error hierarchy. The API maps each class to a gRPC code."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the service refuses the operation; the message says which."""

    # A stable machine-readable cause (google.rpc.ErrorInfo.reason, AIP-193
    # UPPER_SNAKE_CASE); subclasses narrow it, callers may switch on it.
    reason = "DOMAIN_RULE"


class InvalidTransition(DomainError):
    """The letter is not in a state that allows this (FAILED_PRECONDITION)."""

    reason = "INVALID_TRANSITION"


class AcceptanceWindowClosed(InvalidTransition):
    """The 15 days are over: only the non-claim remains."""

    reason = "ACCEPTANCE_WINDOW_CLOSED"


class DepositRefused(DomainError):
    """A deposit the law or the configuration forbids; ``code`` is the stable
    code its SubmissionRejection evidence carries (``consent_missing``)."""

    def __init__(
        self, reason: str, message: str, field: str | None = None, letter: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = reason
        self.reason = reason.upper()
        self.field = field
        # The refused letter, whose SubmissionRejection evidence the sender can read.
        self.letter = letter


class AuthenticationRequired(DomainError):
    """The caller's session does not meet the level the operation needs."""

    reason = "AUTHENTICATION_LEVEL_TOO_LOW"


class SessionRequired(AuthenticationRequired):
    """The call carries no session where one is needed (UNAUTHENTICATED): a
    client logs in, rather than proofing again or adding a factor."""

    reason = "SESSION_REQUIRED"


class InvalidArgument(DomainError):
    """A request field is malformed (INVALID_ARGUMENT); ``field`` names it."""

    reason = "INVALID_FIELD"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """No such resource, or none the caller may see (NOT_FOUND)."""

    reason = "NOT_FOUND"


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows this (FAILED_PRECONDITION)."""

    reason = "FAILED_PRECONDITION"


class RequestConflict(FailedPrecondition):
    """A request_id used before for a request with other content; ``field``
    names what differs. The same request again gets the first result."""

    reason = "REQUEST_ID_REUSED"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AuthenticationFailed(DomainError):
    """Credentials did not match. Deliberately says nothing more (UNAUTHENTICATED)."""

    reason = "AUTHENTICATION_FAILED"


class AlreadyExists(DomainError):
    """The request conflicts with one made before (ALREADY_EXISTS); ``field`` names it."""

    reason = "ALREADY_EXISTS"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PermissionDenied(DomainError):
    """The caller is known but may not act on this resource (PERMISSION_DENIED)."""

    reason = "PERMISSION_DENIED"


class TooManyAttempts(DomainError):
    """Locked after repeated failures (RESOURCE_EXHAUSTED), for ``retry_after``
    seconds when known (a google.rpc.RetryInfo the client can act on)."""

    reason = "TOO_MANY_ATTEMPTS"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyCalls(DomainError):
    """As many long calls of this kind are open as one party may hold, or as
    the process serves (RESOURCE_EXHAUSTED, with ``retry_after``)."""

    reason = "CONCURRENT_CALLS_EXCEEDED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WriteConflict(DomainError):
    """The database refused a write that conflicts with what it holds: a
    unique key taken, most often by a concurrent request that won (ABORTED:
    the caller may retry). A use case that expects the race looks up the
    winner instead."""

    reason = "WRITE_CONFLICT"


class DependencyUnavailable(DomainError):
    """A service this one needs (the signer, the database) does not answer (UNAVAILABLE)."""

    reason = "DEPENDENCY_UNAVAILABLE"
