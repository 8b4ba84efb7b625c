"""End users' sessions, carried as `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import grpc

from lre.server.api.policy import AUDITOR, OPERATOR, current_caller
from lre.server.domain import identity
from lre.server.domain.errors import AuthenticationFailed, SessionRequired
from lre.server.services.identity import IdentityService


def optional_session(
    context: grpc.ServicerContext, identities: IdentityService
) -> identity.Session | None:
    """The caller's session; None when the call carries no token, UNAUTHENTICATED
    when it carries one that is not a live session."""
    metadata = dict(context.invocation_metadata() or ())
    header = str(metadata.get("authorization", ""))
    if not header:
        return None
    if not header.startswith("Bearer ") or len(header) > 512:
        raise AuthenticationFailed("a session token is required (authorization: Bearer ...)")
    return identities.authenticate(header.removeprefix("Bearer "), current_caller().name)


def session_of(context: grpc.ServicerContext, identities: IdentityService) -> identity.Session:
    session = optional_session(context, identities)
    if session is None:
        raise SessionRequired("a session token is required (authorization: Bearer ...)")
    return session


def actor() -> str:
    """Who an operator's act is journaled as: the names in its client
    certificate, or "plaintext" where the port has no TLS (make run, tests)."""
    return current_caller().name or "plaintext"


def staff_role() -> str:
    """The caller's staff roles (operator, auditor), comma-separated; "" for none."""
    return ",".join(sorted(r.value for r in current_caller().roles & {OPERATOR, AUDITOR}))
