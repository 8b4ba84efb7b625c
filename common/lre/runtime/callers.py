"""Who is calling: the names in the caller's verified TLS client certificate.

Both processes identify their callers this way (the server maps the names to
roles, the signer to its two sets of callers); gRPC has checked the
certificate against the client CA before any handler runs.
"""

from __future__ import annotations

import grpc


def certificate_names(context: grpc.ServicerContext) -> list[str]:
    """The subjectAltName entries of the caller's certificate, lower-cased;
    empty in plaintext or without a client certificate."""
    return [
        bytes(name).decode().lower()
        for name in context.auth_context().get("x509_subject_alternative_name", [])
    ]


def parse_names(text: str) -> frozenset[str]:
    """``name,name`` as in a setting; blanks ignored, compared lower-case."""
    return frozenset(n.strip().lower() for n in text.split(",") if n.strip())
