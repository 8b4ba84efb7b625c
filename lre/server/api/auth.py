"""End users' sessions, carried as `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import grpc

from lre.server.domain import identity
from lre.server.domain.errors import AuthenticationFailed
from lre.server.services.identity import IdentityService


def session_of(context: grpc.ServicerContext, identities: IdentityService) -> identity.Session:
    metadata = dict(context.invocation_metadata() or ())
    header = str(metadata.get("authorization", ""))
    if not header.startswith("Bearer ") or len(header) > 512:
        raise AuthenticationFailed("a session token is required (authorization: Bearer ...)")
    return identities.authenticate(header.removeprefix("Bearer "))
