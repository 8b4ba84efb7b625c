"""Who is calling: the names in the caller's verified TLS client certificate.

Both processes identify their callers this way (the server maps the names to
roles, the signer to its two sets of callers); gRPC has checked the
certificate against the client CA before any handler runs.
"""

from __future__ import annotations

import threading

import grpc

# The last call's names, per serving thread: the gate, the guard and the
# deny list all ask, and reading a call's TLS properties costs ~15 µs a time
# (bench/gate_cost.py). A thread serves one call at a time; the reference
# held keeps the context alive, so an identical object is the same call.
_last = threading.local()


def certificate_names(context: grpc.ServicerContext) -> tuple[str, ...]:
    """The subjectAltName entries of the caller's certificate, lower-cased;
    empty in plaintext or without a client certificate."""
    if getattr(_last, "context", None) is context:
        names: tuple[str, ...] = _last.names
        return names
    names = tuple(
        bytes(name).decode().lower()
        for name in context.auth_context().get("x509_subject_alternative_name", [])
    )
    _last.context, _last.names = context, names
    return names


def parse_names(text: str) -> frozenset[str]:
    """``name,name`` as in a setting; blanks ignored, compared lower-case."""
    return frozenset(n.strip().lower() for n in text.split(",") if n.strip())
