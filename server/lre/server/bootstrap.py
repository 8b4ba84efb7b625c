"""The composition root: the one place that names concrete adapters (the
database engine, the signer's client, the mail transport, the clock) and
wires them into the services, the workers and the gRPC servicers."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import logging
import os
import socket
import threading
from dataclasses import dataclass, field

import jwt
from cryptography import x509
from sqlalchemy import Engine

from lre.runtime.config import ConfigError, read_secret
from lre.runtime.denylist import DenyList
from lre.runtime.http import HttpServer, metrics_route
from lre.runtime.serving import GrpcProcess, ServiceBinding, wait_for_signal
from lre.runtime.tls import https_context
from lre.server.adapters.mail import transport_from_url
from lre.server.adapters.signer import ContentKeys, SignerClient
from lre.server.adapters.witness import WitnessPublisher, witnesses_from
from lre.server.api import validation
from lre.server.api.custody import CustodyServicer
from lre.server.api.identity import IdentityServicer
from lre.server.api.notification import NotificationServicer
from lre.server.api.policy import Authorization, RateLimiter, parse_caller_roles
from lre.server.clock import utcnow
from lre.server.config import ServerSettings
from lre.server.domain.identity import AssuranceLevel
from lre.server.health import DependencyHealth
from lre.server.proofs import proof_pdf
from lre.server.services.custody import (
    CustodyPolicy,
    CustodyQueries,
    DecisionService,
    DepositService,
    EvidenceRecorder,
    MailingService,
)
from lre.server.services.custody.bundles import EvidenceBundles
from lre.server.services.events import EventLog
from lre.server.services.identity import EidBroker, IdentityPolicy, IdentityService
from lre.server.services.journal import SecurityJournal, SignerWatch
from lre.server.services.notice_codes import NoticeCodes
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.services.webhooks import WebhookPolicy, WebhookService
from lre.server.storage import db, models
from lre.server.storage.store import Stores
from lre.server.workers import Worker, repeat
from lre.server.workers.census import Census
from lre.server.workers.expiry import ExpirySweep
from lre.server.workers.outbox import NoticeSealer, OutboxDispatcher, RetryPolicy
from lre.server.workers.retention import RetentionPurge
from lre.server.workers.sequencer import Sequencer
from lre.server.workers.signer_watch import SignerWatcher
from lre.server.workers.tree_heads import TreeHeadSealer
from lre.server.workers.webhooks import WebhookDelivery
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)

logger = logging.getLogger("lre.server")

IDENTITY = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
CUSTODY = custody_pb2.DESCRIPTOR.services_by_name["CustodyService"].full_name
NOTIFICATION = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
# What each service needs in order to serve; "" is the process as a whole
# (liveness: it needs nothing, so that an orchestrator never restarts a server
# for an outage of PostgreSQL or the signer), set last so that it turns
# SERVING after every service has been evaluated.
NEEDS: dict[str, tuple[str, ...]] = {
    IDENTITY: ("database",),
    CUSTODY: ("database", "signer"),
    NOTIFICATION: ("database",),
    "": (),
}


# -- identity (kept as one small function: its services are being split) ------


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


def build_identity(settings: ServerSettings, engine: Engine) -> IdentityService:
    return IdentityService(db.sessions(engine), identity_policy(settings))


# -- custody and notification ----------------------------------------------------


@dataclass(frozen=True)
class Services:
    identity: IdentityService
    deposits: DepositService
    decisions: DecisionService
    mailings: MailingService
    queries: CustodyQueries
    bundles: EvidenceBundles
    evidence: EvidenceRecorder
    notifications: NotificationService
    events: EventLog
    webhooks: WebhookService
    journal: SecurityJournal
    signer_watch: SignerWatch


def build_services(settings: ServerSettings, engine: Engine, signer: SignerClient) -> Services:
    stores = Stores(db.sessions(engine))
    identity = build_identity(settings, engine)
    policy = CustodyPolicy(
        provider_name=settings.provider_name,
        max_letter_bytes=settings.max_letter_bytes,
        tariff_minor=settings.tariff_minor,
        currency=settings.currency,
        content_retention=dt.timedelta(days=settings.content_retention_days),
        reminder_days=settings.reminders(),
        sender_min_level=settings.sender_level(),
    )
    proofs = StoredProofs(stores, functools.partial(proof_pdf, signer=signer), utcnow)
    queries = CustodyQueries(stores, proofs, utcnow)
    spool_dir = settings.spool()
    directory, witnesses = settings.tree_head_targets()
    try:
        witness_publisher = WitnessPublisher(witnesses_from(witnesses)) if witnesses else None
    except ValueError as exc:
        raise ConfigError(f"LRE_SERVER_TREE_HEAD_EXPORT: {exc}") from None
    journal = SecurityJournal(stores, utcnow)
    events = EventLog(stores, utcnow, signer, settings.provider_name, directory, witness_publisher)
    evidence = EvidenceRecorder(
        signer,
        policy.provider_name,
        settings.evidence_policy(),
        utcnow,
        clock_skew=dt.timedelta(seconds=settings.evidence_clock_skew_s),
    )
    return Services(
        identity=identity,
        deposits=DepositService(
            stores, identity, ContentKeys(signer), evidence, policy, utcnow, spool_dir
        ),
        decisions=DecisionService(stores, signer, evidence, policy.reminder_days, utcnow),
        mailings=MailingService(stores, signer, evidence, policy, utcnow, spool_dir),
        queries=queries,
        bundles=EvidenceBundles(queries, proofs, events, signer),
        evidence=evidence,
        notifications=NotificationService(
            stores,
            NotificationPolicy(
                settings.secrets_key(),
                settings.mail_from,
                settings.recipient_portal_url,
                settings.provider_name,
            ),
            proofs,
            NoticeCodes(settings.notice_code_threshold, dt.timedelta(seconds=settings.lockout_s)),
        ),
        events=events,
        webhooks=WebhookService(
            stores,
            WebhookPolicy(
                settings.secrets_key(),
                first_retry=dt.timedelta(seconds=settings.webhook_first_retry_s),
                give_up_after=dt.timedelta(hours=settings.webhook_give_up_hours),
                timeout_s=settings.webhook_timeout_s,
                allowed_networks=settings.webhook_networks(),
            ),
            utcnow,
        ),
        journal=journal,
        signer_watch=SignerWatch(journal, signer, socket.gethostname()),
    )


def build_workers(
    settings: ServerSettings, engine: Engine, services: Services
) -> list[tuple[Worker, float]]:
    """Each worker and the seconds it waits once it has nothing left to do."""
    stores = Stores(db.sessions(engine))
    smtp_password = read_secret(settings.smtp_password_file, "LRE_SERVER_SMTP_PASSWORD")
    dispatcher = OutboxDispatcher(
        stores,
        transport_from_url(settings.mail_transport, smtp_password, settings.smtp_timeout_s),
        services.notifications,
        services.decisions,
        RetryPolicy(
            settings.outbox_max_attempts, dt.timedelta(seconds=settings.outbox_first_retry_s)
        ),
        utcnow,
        settings.outbox_lease(),
    )
    return [
        (Census(stores), settings.census_interval_s),
        (Sequencer(services.events), settings.sequencer_interval_s),
        *(
            (WebhookDelivery(services.webhooks), settings.sequencer_interval_s)
            for _ in range(max(1, settings.webhook_lanes))
        ),
        (TreeHeadSealer(services.events), settings.tree_head_interval_s),
        (SignerWatcher(services.signer_watch), settings.health_check_interval_s),
        (dispatcher, settings.outbox_interval_s),
        (NoticeSealer(stores, services.decisions, utcnow), settings.outbox_interval_s),
        (ExpirySweep(stores, services.evidence, utcnow), settings.expiry_interval_s),
        (
            RetentionPurge(stores, dt.timedelta(days=settings.content_retention_days), utcnow),
            settings.retention_interval_s,
        ),
    ]


def service_bindings(services: Services) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            IDENTITY,
            identity_pb2_grpc.add_IdentityServiceServicer_to_server,
            IdentityServicer(services.identity),
        ),
        ServiceBinding(
            CUSTODY,
            custody_pb2_grpc.add_CustodyServiceServicer_to_server,
            CustodyServicer(
                services.deposits,
                services.decisions,
                services.mailings,
                services.queries,
                services.identity,
                services.events,
                services.bundles,
            ),
        ),
        ServiceBinding(
            NOTIFICATION,
            notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            NotificationServicer(
                services.notifications,
                services.decisions,
                services.queries,
                services.identity,
                services.events,
                services.webhooks,
            ),
        ),
    ]


# -- the process ---------------------------------------------------------------


def journal_start(
    settings: ServerSettings, journal: SecurityJournal, command: str, stop: threading.Event
) -> threading.Thread:
    """The process's start in the security journal (its version and a digest
    of its effective settings), retried in the background until the database
    takes it: a process never waits on the journal to start."""
    instance = f"{socket.gethostname()}-{os.getpid()}"
    version = importlib.metadata.version("lre-server")

    def run() -> None:
        while not stop.is_set():
            try:
                journal.process_started(command, version, settings, instance)
                return
            except Exception as exc:  # the database is down: retry
                logger.warning(
                    "process start not journaled yet; retrying",
                    extra={"error_type": type(exc).__name__},
                )
            stop.wait(5)

    thread = threading.Thread(target=run, name="journal-start", daemon=True)
    thread.start()
    return thread


@dataclass
class WorkerThreads:
    """The workers, each on its own thread repeating its step."""

    workers: list[tuple[Worker, float]]
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for worker, interval in self.workers:
            thread = threading.Thread(
                target=repeat,
                args=(self._stop, interval, worker.step, worker.name),
                name=worker.name,
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@dataclass
class Server:
    process: GrpcProcess
    health: DependencyHealth
    services: Services
    workers: WorkerThreads


def build(settings: ServerSettings, engine: Engine, signer: SignerClient) -> Server:
    """The server over an engine and a signer client (tests pass their own)."""
    services = build_services(settings, engine, signer)
    workers = build_workers(settings, engine, services) if settings.run_workers else []
    credentials = settings.server_credentials()
    try:
        caller_roles = parse_caller_roles(settings.caller_roles)
    except ValueError as exc:
        raise ConfigError(f"LRE_SERVER_CALLER_ROLES: {exc}") from None
    guard = Authorization(
        caller_roles,
        tls=credentials is not None,
        limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
    )
    process = GrpcProcess(
        service_bindings(services),
        settings.grpc_address,
        max_workers=settings.grpc_threads,
        guard=guard,
        credentials=credentials,
        validate=validation.checker(models.column_length),
        limits=settings.stream_limits(),
        health_address=settings.health_address or None,
        reflection_enabled=settings.reflection,
        role_of=guard.role_label,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs or None,
        deny=DenyList(settings.denied_callers_file),
    )
    process.set_serving(False)
    health = DependencyHealth(engine, signer, process, settings.health_check_interval_s, NEEDS)
    return Server(process, health, services, WorkerThreads(workers))


def _metrics(settings: ServerSettings) -> HttpServer:
    return HttpServer(
        [metrics_route()],
        settings.metrics_address,
        https_context(settings.tls_cert_file, settings.tls_key_file),
        settings.metrics_timeout_s,
        name="metrics",
    )


def signer_client(settings: ServerSettings) -> SignerClient:
    return SignerClient(settings.signer_address, credentials=settings.signer_credentials())


def serve(settings: ServerSettings) -> None:
    """Runs the server with its concrete adapters until SIGTERM or SIGINT."""
    engine = db.make_engine(settings.database_url)
    signer = signer_client(settings)
    server = build(settings, engine, signer)
    metrics = _metrics(settings)
    metrics.start()
    stopping = threading.Event()
    journal_start(settings, server.services.journal, "serve", stopping)
    server.process.start()
    server.health.start()
    server.workers.start()
    logger.info(
        "server serving", extra={"grpc_port": server.process.port, "metrics_port": metrics.port}
    )
    wait_for_signal()
    stopping.set()
    logger.info("server stopping")
    server.process.stop(grace=settings.shutdown_grace_s, drain=settings.shutdown_drain_s)
    server.workers.stop()
    server.health.stop()
    signer.close()
    metrics.stop()
    engine.dispose()


def work(settings: ServerSettings) -> None:
    """Runs only the workers (the API instances then set ``run_workers =
    false``) until SIGTERM or SIGINT; alive while /metrics answers. Several
    may run: the outbox is claimed row by row (SKIP LOCKED) and the sequencer
    under an advisory lock."""
    engine = db.make_engine(settings.database_url)
    signer = signer_client(settings)
    services = build_services(settings, engine, signer)
    workers = WorkerThreads(build_workers(settings, engine, services))
    metrics = _metrics(settings)
    metrics.start()
    stopping = threading.Event()
    journal_start(settings, services.journal, "work", stopping)
    workers.start()
    logger.info("workers running", extra={"metrics_port": metrics.port})
    wait_for_signal()
    stopping.set()
    logger.info("workers stopping")
    workers.stop()
    signer.close()
    metrics.stop()
    engine.dispose()
