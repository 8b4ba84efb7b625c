"""The server process: its gRPC services, health that follows the database,
and Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

import jwt
from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lre.runtime.config import ConfigError, read_secret
from lre.runtime.serving import GrpcProcess, ServiceBinding
from lre.server.api.custody import CustodyServicer
from lre.server.api.identity import IdentityServicer
from lre.server.api.notification import NotificationServicer
from lre.server.api.policy import Authorization, RateLimiter, parse_caller_roles
from lre.server.clock import utcnow
from lre.server.config import ServerSettings
from lre.server.domain.identity import AssuranceLevel
from lre.server.mail import transport_from_url
from lre.server.services.custody import CustodyPolicy, CustodyService
from lre.server.services.events import EventLog
from lre.server.services.identity import EidBroker, IdentityPolicy, IdentityService
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.webhooks import WebhookPolicy, WebhookService
from lre.server.signing import SignerClient
from lre.server.storage import db
from lre.server.workers.outbox import OutboxDispatcher, RetryPolicy
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)

log = logging.getLogger("lre.server")

IDENTITY = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
CUSTODY = custody_pb2.DESCRIPTOR.services_by_name["CustodyService"].full_name
NOTIFICATION = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
# What each service needs in order to serve; "" is the process as a whole,
# set last so that it turns SERVING after every service has been evaluated.
NEEDS: dict[str, tuple[str, ...]] = {
    IDENTITY: ("database",),
    CUSTODY: ("database", "signer"),
    NOTIFICATION: ("database",),
    "": ("database",),
}


def service_bindings(
    identity: IdentityService,
    custody: CustodyService,
    notifications: NotificationService,
    events: EventLog,
    webhooks: WebhookService,
) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            IDENTITY,
            identity_pb2_grpc.add_IdentityServiceServicer_to_server,
            IdentityServicer(identity),
        ),
        ServiceBinding(
            CUSTODY,
            custody_pb2_grpc.add_CustodyServiceServicer_to_server,
            CustodyServicer(custody, identity, events),
        ),
        ServiceBinding(
            NOTIFICATION,
            notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            NotificationServicer(notifications, custody, identity, events, webhooks),
        ),
    ]


class DependencyHealth:
    """Polls the database and the signer; each service is SERVING while what
    it needs answers, so that a load balancer sends work only where it can be done."""

    def __init__(
        self, engine: Engine, signer: SignerClient, process: GrpcProcess, interval_s: float
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._process = process
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dependency-health", daemon=True)

    def _database_up(self) -> bool:
        try:
            db.ping(self._engine)
        except SQLAlchemyError as exc:
            log.warning("database unreachable", extra={"error_type": type(exc).__name__})
            return False
        return True

    def check(self) -> dict[str, bool]:
        up = {"database": self._database_up(), "signer": self._signer.serving()}
        return {service: all(up[d] for d in needs) for service, needs in NEEDS.items()}

    def _run(self) -> None:
        last: dict[str, bool] = {}
        while not self._stop.is_set():
            for service, serving in self.check().items():
                if last.get(service) != serving:
                    self._process.set_serving(serving, service)
                    log.info("health", extra={"service": service or "(server)", "serving": serving})
                    last[service] = serving
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def identity_policy(settings: ServerSettings) -> IdentityPolicy:
    anchors: tuple[x509.Certificate, ...] = ()
    if settings.identity_trust_anchors_file is not None:
        anchors = tuple(
            x509.load_pem_x509_certificates(settings.identity_trust_anchors_file.read_bytes())
        )
    eid = None
    if settings.eid_jwks_file is not None:
        if not (settings.eid_issuer and settings.eid_audience):
            raise ConfigError(
                "LRE_SERVER_EID_ISSUER and LRE_SERVER_EID_AUDIENCE go with the JWKS file"
            )
        levels = {}
        for pair in settings.eid_acr_levels.split(","):
            acr, _, level = pair.partition("=")
            try:
                levels[acr.strip()] = AssuranceLevel[level.strip().upper()]
            except KeyError:
                raise ConfigError(
                    "LRE_SERVER_EID_ACR_LEVELS: acr=low|substantial|high, comma-separated"
                ) from None
        eid = EidBroker(
            issuer=settings.eid_issuer,
            audience=settings.eid_audience,
            keys=jwt.PyJWKSet.from_json(settings.eid_jwks_file.read_text(encoding="utf-8")),
            acr_levels=levels,
        )
    return IdentityPolicy(
        secrets_key=settings.secrets_key(),
        session_ttl=dt.timedelta(seconds=settings.session_ttl_s),
        lockout_threshold=settings.lockout_threshold,
        lockout=dt.timedelta(seconds=settings.lockout_s),
        proof_validity=dt.timedelta(days=settings.proof_validity_days),
        trust_anchors=anchors,
        eid=eid,
    )


@dataclass(frozen=True)
class Server:
    process: GrpcProcess
    health: DependencyHealth
    dispatcher: OutboxDispatcher
    custody: CustodyService
    events: EventLog
    webhooks: WebhookService


def build(settings: ServerSettings, engine: Engine, signer: SignerClient) -> Server:
    identity = IdentityService(db.sessions(engine), identity_policy(settings))
    custody = CustodyService(
        db.sessions(engine),
        identity,
        signer,
        CustodyPolicy(
            provider_name=settings.provider_name,
            max_letter_bytes=settings.max_letter_bytes,
            tariff_minor=settings.tariff_minor,
            currency=settings.currency,
            content_retention=dt.timedelta(days=settings.content_retention_days),
            reminder_days=settings.reminders(),
        ),
        utcnow,
    )
    notifications = NotificationService(
        db.sessions(engine),
        NotificationPolicy(
            settings.secrets_key(),
            settings.mail_from,
            settings.recipient_portal_url,
            settings.provider_name,
        ),
    )
    smtp_password = read_secret(settings.smtp_password_file, "LRE_SERVER_SMTP_PASSWORD")
    dispatcher = OutboxDispatcher(
        db.sessions(engine),
        transport_from_url(settings.mail_transport, smtp_password),
        notifications,
        custody,
        RetryPolicy(
            settings.outbox_max_attempts, dt.timedelta(seconds=settings.outbox_first_retry_s)
        ),
        utcnow,
    )
    events = EventLog(
        db.sessions(engine), utcnow, signer, settings.provider_name, settings.tree_head_export
    )
    webhooks = WebhookService(
        db.sessions(engine),
        events,
        WebhookPolicy(
            settings.secrets_key(),
            first_retry=dt.timedelta(seconds=settings.webhook_first_retry_s),
            give_up_after=dt.timedelta(hours=settings.webhook_give_up_hours),
        ),
        utcnow,
    )
    credentials = settings.server_credentials()
    try:
        caller_roles = parse_caller_roles(settings.caller_roles)
    except ValueError as exc:
        raise ConfigError(f"LRE_SERVER_CALLER_ROLES: {exc}") from None
    process = GrpcProcess(
        service_bindings(identity, custody, notifications, events, webhooks),
        settings.grpc_address,
        max_workers=settings.grpc_threads,
        guard=Authorization(
            caller_roles,
            tls=credentials is not None,
            limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        ),
        credentials=credentials,
    )
    process.set_serving(False)
    health = DependencyHealth(engine, signer, process, settings.health_check_interval_s)
    return Server(process, health, dispatcher, custody, events, webhooks)
