"""Who may call what: the one authorization policy every RPC goes through.

Internal callers are identified by the DNS name in their TLS client
certificate, mapped to a role by the `caller_roles` setting. End users act
through a portal and carry their session token on top (checked by each
servicer: a user sees only their letters). Without TLS (`make run` and tests
on one machine; refused when `require_tls` is set, as in production) there is
no caller identity to check, so every caller holds every role.
"""

from __future__ import annotations

import contextvars
import enum
import threading
import time
from dataclasses import dataclass

import grpc

from lre.runtime.callers import certificate_names
from lre.runtime.status import abort
from lre.server.domain.identity import Source


class Role(enum.Enum):
    SENDER_GATEWAY = "sender_gateway"
    RECIPIENT_PORTAL = "recipient_portal"
    OPERATOR = "operator"
    AUDITOR = "auditor"


SENDER, RECIPIENT = Role.SENDER_GATEWAY, Role.RECIPIENT_PORTAL
OPERATOR, AUDITOR = Role.OPERATOR, Role.AUDITOR
PORTALS = frozenset({SENDER, RECIPIENT})
PLAINTEXT_ROLES = frozenset(Role)

_C, _I, _N = "/lre.v1.CustodyService/", "/lre.v1.IdentityService/", "/lre.v1.NotificationService/"
# Every RPC of the server, and the roles that may call it. A method missing
# here is refused: a new RPC is closed until someone decides who may call it.
POLICY: dict[str, frozenset[Role]] = {
    _C + "DepositLetter": frozenset({SENDER}),
    _C + "GetLetter": PORTALS,
    _C + "ListLetters": PORTALS,
    _C + "AcceptLetter": frozenset({RECIPIENT}),
    _C + "RefuseLetter": frozenset({RECIPIENT}),
    # The recipient's after acceptance; the sender's copy of what it deposited.
    _C + "DownloadLetterContent": PORTALS,
    # Operators and auditors read any letter's evidence, journaled (CustodyQueries).
    _C + "ListEvidence": PORTALS | {OPERATOR, AUDITOR},
    _C + "GetEvidence": PORTALS | {OPERATOR, AUDITOR},
    _C + "GetEvidenceProof": PORTALS | {OPERATOR, AUDITOR},
    _C + "GetEvidenceBundle": PORTALS | {OPERATOR, AUDITOR},
    _C + "SetLegalHold": frozenset({OPERATOR}),
    _C + "ListCharges": frozenset({SENDER}),
    _C + "DepositMailing": frozenset({SENDER}),
    _C + "GetMailing": frozenset({SENDER}),
    _C + "ListMailings": frozenset({SENDER}),
    _C + "GetMailingReport": frozenset({SENDER}),
    _C + "GetTreeHead": PORTALS | {OPERATOR, AUDITOR},
    _C + "SealTreeHead": frozenset({OPERATOR}),
    _C + "GetInclusionProof": PORTALS,
    _C + "GetConsistencyProof": PORTALS | {OPERATOR, AUDITOR},
    _I + "CreateParty": PORTALS,
    _I + "GetParty": PORTALS | {OPERATOR, AUDITOR},
    _I + "BeginCertificateProofing": PORTALS,
    _I + "CompleteCertificateProofing": PORTALS,
    _I + "ProofWithEidAssertion": PORTALS,
    _I + "RecordDocumentCheck": frozenset({OPERATOR}),
    _I + "ListIdentityRecords": PORTALS | {OPERATOR, AUDITOR},
    # An operator on documents, or the party's own session (checked by the servicer).
    _I + "SetProfessionalStatus": PORTALS | {OPERATOR},
    # Operators; a sender (its session) its own addressee before the notice.
    _I + "CorrectParty": frozenset({OPERATOR, SENDER}),
    _I + "ListPartyCorrections": PORTALS | {OPERATOR, AUDITOR},
    _I + "EnrollCredentials": PORTALS,
    _I + "SetPassword": PORTALS,
    _I + "EnrollTotp": PORTALS,
    _I + "SendEmailCode": PORTALS,
    _I + "CreateSession": PORTALS,
    _I + "SendUnlockCode": PORTALS,
    _I + "Unlock": PORTALS,
    _I + "RevokeSession": PORTALS,
    _I + "GrantConsent": PORTALS | {OPERATOR},
    _I + "WithdrawConsent": PORTALS | {OPERATOR},
    _I + "ListConsents": PORTALS | {OPERATOR, AUDITOR},
    # Erasure on request is an operator's act; the export, the party's own
    # session (checked by the servicer) or an operator.
    _I + "ErasePartyData": frozenset({OPERATOR}),
    _I + "ExportPartyData": PORTALS | {OPERATOR},
    _N + "VerifyNotification": PORTALS,
    # The recipient's way in from its notice: the recipients' portal only.
    _N + "ClaimLetter": frozenset({RECIPIENT}),
    _N + "ListNotifications": PORTALS,
    _N + "RecordBounce": frozenset({OPERATOR}),
    _N + "CreateWebhook": frozenset({SENDER}),
    _N + "ListWebhooks": frozenset({SENDER}),
    _N + "DeleteWebhook": frozenset({SENDER}),
    _N + "StreamLetterEvents": frozenset({SENDER}),
}


@dataclass(frozen=True)
class Caller:
    """Who called: the names in the client certificate (sorted, joined; "" in
    plaintext) and the roles they map to. Idempotency keys are scoped to it."""

    name: str
    roles: frozenset[Role]

    @property
    def staff(self) -> bool:
        """Operators and auditors read any party; portals only with its session."""
        return bool(self.roles & {OPERATOR, AUDITOR})


# The caller the guard admitted for the RPC this thread is serving (set before
# every handler runs; nobody by default, e.g. a servicer run without the guard).
_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)
NOBODY = Caller("", frozenset())


def current_caller() -> Caller:
    return _CALLER.get() or NOBODY


# The end user's address as a portal forwards it: failures are counted per
# caller and per end user, so one portal user cannot lock another out, and
# per caller alone under a ceiling, so a caller cannot outrun its lockouts by
# changing it (lre.server.services.identity.throttles).
END_USER_KEY = "x-lre-end-user"


def source_of(context: grpc.ServicerContext) -> Source:
    """Who attempts an authentication, as the lockout counts it: digests of
    the caller certificate (or the peer's address in plaintext) with and
    without the end user's address its portal forwards. Never stored or
    logged in clear."""
    caller = current_caller().name or context.peer().rsplit(":", 1)[0]
    metadata = dict(context.invocation_metadata() or ())
    return Source.of(caller, str(metadata.get(END_USER_KEY, ""))[:100])


# Health and reflection answer anyone who reached the port (load balancers, grpcurl).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def parse_caller_roles(text: str) -> dict[str, Role]:
    """``dns-name=role,dns-name=role`` as in the setting."""
    roles = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, _, role = pair.partition("=")
        roles[name.strip().lower()] = Role(role.strip())
    return roles


class RateLimiter:
    """A token bucket per caller: ``rate`` calls a second, bursts of ``burst``.
    Per process: with N processes a caller may reach N times the rate."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, caller: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            allowed = tokens >= 1
            self._buckets[caller] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > 100_000:  # forget idle callers rather than grow
                self._buckets.clear()
            return allowed


class Authorization:
    """The guard of every RPC: the caller's role, the policy, the caller's rate."""

    def __init__(
        self, caller_roles: dict[str, Role], tls: bool, limiter: RateLimiter | None = None
    ) -> None:
        self._caller_roles = caller_roles
        self._tls = tls
        self._limiter = limiter

    def roles(self, context: grpc.ServicerContext) -> frozenset[Role]:
        if not self._tls:
            return PLAINTEXT_ROLES
        return frozenset(
            self._caller_roles[n] for n in certificate_names(context) if n in self._caller_roles
        )

    def role_label(self, context: grpc.ServicerContext) -> str:
        """The caller's roles as a metric label: a handful of values at most."""
        return "+".join(sorted(r.value for r in self.roles(context))) or "none"

    def caller(self, context: grpc.ServicerContext) -> str:
        """Who is rate-limited: the certificate's name, or the peer's address."""
        if self._tls:
            return ",".join(sorted(certificate_names(context)))
        return context.peer().rsplit(":", 1)[0]

    def __call__(self, method: str, context: grpc.ServicerContext) -> None:
        if method.startswith(OPEN_PREFIXES):
            return
        allowed = POLICY.get(method, frozenset())
        roles = self.roles(context)
        if not roles:
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "the client certificate names no known caller",
                error_info=("UNKNOWN_CALLER", {}),
            )
        if not roles & allowed:
            caller = "/".join(sorted(r.value for r in roles))
            rpc = method.rsplit("/", 1)[-1]
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller} may not call {rpc}",
                error_info=("METHOD_NOT_ALLOWED", {"method": rpc}),
            )
        name = self.caller(context)
        if self._limiter is not None and not self._limiter.allow(name):
            abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many calls from this caller; slow down and retry",
                error_info=("CALLER_RATE_EXCEEDED", {}),
                retry_after=1.0,
            )
        _CALLER.set(Caller(name if self._tls else "", roles))
