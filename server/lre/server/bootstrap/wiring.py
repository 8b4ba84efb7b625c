"""What the settings make: the services over their concrete adapters, the
workers, the gRPC servicers."""

from __future__ import annotations

import datetime as dt
import functools
import socket
from dataclasses import dataclass

import jwt
from cryptography import x509
from sqlalchemy import Engine

from lre.runtime.config import ConfigError, read_secret
from lre.runtime.inflight import give_way
from lre.runtime.serving import ServiceBinding
from lre.server.adapters import trusted_lists
from lre.server.adapters.mail import transport_from_url
from lre.server.adapters.object_store import ObjectStore
from lre.server.adapters.revocation import RevocationChecker
from lre.server.adapters.signer import ContentKeys, SignerClient
from lre.server.adapters.witness import WitnessPublisher, witnesses_from
from lre.server.api.custody import CustodyServicer
from lre.server.api.identity import IdentityServicer
from lre.server.api.notification import NotificationServicer
from lre.server.bootstrap.archive import build_archive
from lre.server.clock import utcnow
from lre.server.config import ServerSettings
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.retention import RetentionSchedule
from lre.server.proofs import proof_pdf, summary_pdf
from lre.server.services.archive import ArchiveRenewal
from lre.server.services.custody import (
    CustodyPolicy,
    CustodyQueries,
    DecisionService,
    DepositService,
    EvidenceRecorder,
    MailingService,
)
from lre.server.services.custody.bundles import EvidenceBundles
from lre.server.services.custody.content_store import (
    ContentStore,
    DatabaseContent,
    ObjectContent,
)
from lre.server.services.custody.mailing_proofs import MailingProofs
from lre.server.services.events import EventLog
from lre.server.services.identity import EidBroker, IdentityPolicy, IdentityService
from lre.server.services.identity.corrections import CorrectionService
from lre.server.services.identity.erasure import ErasureService
from lre.server.services.journal import SecurityJournal, SignerWatch
from lre.server.services.notice_codes import NoticeCodes
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.services.webhooks import WebhookPolicy, WebhookService
from lre.server.storage import db
from lre.server.storage.store import Stores
from lre.server.workers import Doorbell, Scheduled
from lre.server.workers.archive_timestamps import ArchiveTimestamps
from lre.server.workers.census import Census
from lre.server.workers.content_objects import ContentObjects
from lre.server.workers.expiry import ExpirySweep
from lre.server.workers.outbox import NoticeSealer, OutboxDispatcher, RetryPolicy
from lre.server.workers.outbox.notices import NOTICE_GRACE
from lre.server.workers.personal_data import PersonalDataEraser
from lre.server.workers.retention import RetentionPurge
from lre.server.workers.sequencer import Sequencer
from lre.server.workers.signer_watch import SignerOutage, SignerWatcher
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

IDENTITY = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
CUSTODY = custody_pb2.DESCRIPTOR.services_by_name["CustodyService"].full_name
NOTIFICATION = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


# -- identity ------------------------------------------------------------------


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
    lists = qualified_lists(settings)
    if settings.proofing_require_qualified and lists is None:
        raise ConfigError(
            "LRE_SERVER_PROOFING_REQUIRE_QUALIFIED: needs LRE_SERVER_TRUSTED_LIST_FILES"
            " and LRE_SERVER_TRUSTED_LIST_SIGNERS_FILE"
        )
    return IdentityPolicy(
        secrets_key=settings.secrets_key(),
        session_ttl=dt.timedelta(seconds=settings.session_ttl_s),
        lockout_threshold=settings.lockout_threshold,
        lockout=dt.timedelta(seconds=settings.lockout_s),
        proof_validity=dt.timedelta(days=settings.proof_validity_days),
        trust_anchors=anchors,
        eid=eid,
        revocation=_revocation(settings, anchors),
        trusted_lists=lists,
        require_qualified=settings.proofing_require_qualified,
    )


def qualified_lists(settings: ServerSettings) -> trusted_lists.TrustedLists | None:
    """The EU trusted lists, verified (a ConfigError when one does not)."""
    return trusted_lists.configured(
        settings.trusted_list_files,
        settings.trusted_list_signers_file,
        settings.proofing_require_qualified,
    )


def _revocation(
    settings: ServerSettings, anchors: tuple[x509.Certificate, ...]
) -> RevocationChecker | None:
    mode = settings.proofing_revocation
    if mode == "given":
        return None
    if mode not in ("fetch", "offline"):
        raise ConfigError("LRE_SERVER_PROOFING_REVOCATION: given, fetch or offline")
    directory = settings.proofing_revocation_dir
    if mode == "offline" and directory is None:
        raise ConfigError("LRE_SERVER_PROOFING_REVOCATION_DIR: required offline")
    return RevocationChecker(
        anchors,
        settings.proofing_revocation_cache_s,
        settings.proofing_revocation_timeout_s,
        offline_dir=directory,
        fetch=mode == "fetch",
    )


def build_identity(settings: ServerSettings, stores: Stores) -> IdentityService:
    return IdentityService(stores, identity_policy(settings))


# -- custody and notification ----------------------------------------------------


@dataclass(frozen=True)
class Services:
    identity: IdentityService
    deposits: DepositService
    decisions: DecisionService
    mailings: MailingService
    queries: CustodyQueries
    bundles: EvidenceBundles
    mailing_proofs: MailingProofs
    evidence: EvidenceRecorder
    notifications: NotificationService
    events: EventLog
    webhooks: WebhookService
    journal: SecurityJournal
    signer_watch: SignerWatch
    # Where content is kept; ``objects`` is the object store when there is one.
    content: ContentStore
    objects: ObjectStore | None
    corrections: CorrectionService
    erasure: ErasureService
    archive: ArchiveRenewal


def build_content(
    settings: ServerSettings, stores: Stores, retention: dt.timedelta
) -> tuple[ContentStore, ObjectStore | None]:
    object_settings = settings.object_store()
    if object_settings is None:
        return DatabaseContent(), None
    objects = ObjectStore(object_settings)
    return ObjectContent(stores, objects, retention, utcnow), objects


def build_services(settings: ServerSettings, engine: Engine, signer: SignerClient) -> Services:
    stores = Stores(db.sessions(engine))
    identity = build_identity(settings, stores)
    policy = CustodyPolicy(
        provider_name=settings.provider_name,
        max_letter_bytes=settings.max_letter_bytes,
        tariff_minor=settings.tariff_minor,
        currency=settings.currency,
        content_retention=dt.timedelta(days=settings.content_retention_days),
        reminder_days=settings.reminders(),
        sender_min_level=settings.sender_level(),
    )
    content, objects = build_content(settings, stores, policy.content_retention)
    render = functools.partial(proof_pdf, signer=signer)
    proofs = StoredProofs(stores, render, utcnow)
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
            stores, ContentKeys(signer), evidence, policy, utcnow, spool_dir, content
        ),
        decisions=DecisionService(stores, signer, evidence, policy.reminder_days, utcnow, content),
        mailings=MailingService(stores, signer, evidence, policy, utcnow, spool_dir, content),
        queries=queries,
        bundles=EvidenceBundles(queries, proofs, events),
        mailing_proofs=MailingProofs(
            stores,
            signer,
            evidence,
            render,
            functools.partial(summary_pdf, signer=signer),
            utcnow,
        ),
        evidence=evidence,
        notifications=NotificationService(
            stores,
            NotificationPolicy(
                settings.secrets_key(),
                settings.mail_sender(),
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
        content=content,
        objects=objects,
        corrections=CorrectionService(stores, signer.seal, settings.provider_name, utcnow),
        erasure=ErasureService(stores, retention_schedule(settings), utcnow),
        archive=build_archive(settings, stores, signer),
    )


def retention_schedule(settings: ServerSettings) -> RetentionSchedule:
    try:
        return RetentionSchedule(
            party_after_last_letter=dt.timedelta(days=settings.party_retention_days),
            party_without_letters=dt.timedelta(days=settings.inactive_party_retention_days),
            sessions=dt.timedelta(days=settings.session_retention_days),
        )
    except ValueError as exc:
        raise ConfigError(f"LRE_SERVER_PARTY_RETENTION_DAYS and related: {exc}") from None


def build_workers(settings: ServerSettings, engine: Engine, services: Services) -> list[Scheduled]:
    """Each worker, the seconds it waits once it has nothing left to do, and
    what wakes it before."""
    stores = Stores(db.sessions(engine))
    smtp_password = read_secret(settings.smtp_password_file, "LRE_SERVER_SMTP_PASSWORD")
    # One transport for every lane: it keeps a connection per thread.
    transport = transport_from_url(settings.mail_transport, smtp_password, settings.smtp_timeout_s)
    outage = SignerOutage()
    dispatchers = [
        OutboxDispatcher(
            stores,
            transport,
            services.notifications,
            services.decisions,
            RetryPolicy(
                settings.outbox_max_attempts, dt.timedelta(seconds=settings.outbox_first_retry_s)
            ),
            utcnow,
            outage,
            settings.outbox_lease(),
            # A message waits at most a second for the API's calls: under a
            # sustained load each lane still sends one a second.
            functools.partial(give_way, "outbox", 1.0),
        )
        for _ in range(max(1, settings.outbox_lanes))
    ]
    content = services.content
    housekeeping = (
        [Scheduled(ContentObjects(content), settings.content_objects_interval_s)]
        if isinstance(content, ObjectContent)
        else []
    )
    # The webhooks' lanes deliver what the sequencer indexed: it wakes them
    # (one, which wakes another if it found work); each looks on its own once
    # a webhook's idle time, for retries and entries indexed by other
    # processes, rather than a transaction every sequencer interval.
    sequenced = Doorbell()
    webhook_interval_s = max(settings.sequencer_interval_s, WebhookPolicy.idle.total_seconds())
    # The dispatcher seals each notice as it leaves; the notice sealer only
    # finds those left while the signer was down, NOTICE_GRACE after they left.
    notices_interval_s = max(settings.outbox_interval_s, NOTICE_GRACE.total_seconds())
    return [
        *housekeeping,
        Scheduled(Census(stores), settings.census_interval_s),
        Scheduled(Sequencer(services.events, sequenced), settings.sequencer_interval_s),
        *(
            Scheduled(WebhookDelivery(services.webhooks), webhook_interval_s, sequenced)
            for _ in range(max(1, settings.webhook_lanes))
        ),
        Scheduled(TreeHeadSealer(services.events), settings.tree_head_interval_s),
        Scheduled(
            SignerWatcher(services.signer_watch, outage, utcnow), settings.health_check_interval_s
        ),
        *(Scheduled(dispatcher, settings.outbox_interval_s) for dispatcher in dispatchers),
        Scheduled(NoticeSealer(stores, services.decisions, utcnow, outage), notices_interval_s),
        Scheduled(ExpirySweep(stores, services.evidence, utcnow), settings.expiry_interval_s),
        Scheduled(
            RetentionPurge(stores, dt.timedelta(days=settings.content_retention_days), utcnow),
            settings.retention_interval_s,
        ),
        Scheduled(PersonalDataEraser(services.erasure), settings.retention_interval_s),
        Scheduled(ArchiveTimestamps(services.archive), settings.archive_interval_s),
    ]


def service_bindings(services: Services) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            IDENTITY,
            identity_pb2_grpc.add_IdentityServiceServicer_to_server,
            IdentityServicer(services.identity, services.corrections, services.erasure),
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
                services.mailing_proofs,
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
