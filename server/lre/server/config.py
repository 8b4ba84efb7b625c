"""Server settings: defaults here, overridable by ``[server]`` in the
``LRE_CONFIG`` TOML file and by ``LRE_SERVER_*`` environment variables."""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc

from lre.runtime import config, tls
from lre.runtime.certfiles import CertificateFiles
from lre.runtime.limits import StreamLimits, stream_limits
from lre.server.adapters import outbound
from lre.server.adapters.at_rest import SecretsKeys, read_key
from lre.server.adapters.object_store import ObjectStoreSettings, object_store_settings
from lre.server.adapters.witness import split_targets
from lre.server.domain.addresses import email_problem
from lre.server.domain.identity import AssuranceLevel


@dataclass(frozen=True)
class ServerSettings:
    # "production" refuses to start while a setting keeps a development
    # default (identity, mail, portal, roles, SQLite, plaintext, development
    # CA...): evidence sealed under a development identity is permanent.
    profile: str = "development"
    # SQLite for the zero-setup default; postgresql+psycopg://... in production.
    database_url: str = "sqlite:///var/lre.db"
    # The database password's file, put into database_url when connecting.
    database_password_file: Path | None = None
    grpc_address: str = "127.0.0.1:50051"
    # Optional plaintext listener serving grpc.health.v1 only ("" none): for
    # probes that cannot present a client certificate (the kubelet's gRPC probes).
    health_address: str = ""
    # Prometheus /metrics.
    metrics_address: str = "127.0.0.1:9101"
    # The most a scraper may take for a TLS handshake or a request, or stay
    # idle between requests; then it is cut.
    metrics_timeout_s: float = 10.0
    # A gRPC target: "host:port", or several signers, "ipv4:10.0.0.1:50052,10.0.0.2:50052"
    # or "dns:///lre-signer.lre.svc:50052" (every address the name resolves to);
    # calls are spread round-robin over those that answer.
    signer_address: str = "127.0.0.1:50052"
    grpc_threads: int = 16
    # No client holds the server (lre.runtime.limits, docs/operations.md): a
    # call waiting on its client longer than stream_idle_s, or a stream still
    # open after stream_total_s (a health Watch after watch_total_s), is
    # cancelled; of each class of long call (deposit streams, downloads,
    # watches, reflection), at most streams_per_caller at once per caller
    # certificate and streams_per_user per session within it; never more than
    # watch_streams Watches, reflection_streams reflection streams, or
    # grpc_threads - reserved_threads long calls in all: the reserved threads
    # are for unary calls and health checks. Beyond grpc_max_concurrent_rpcs
    # calls in progress or queued (0: 8 per thread), gRPC refuses at once.
    stream_idle_s: float = 30.0
    stream_total_s: float = 900.0
    streams_per_caller: int = 8
    streams_per_user: int = 4
    reserved_threads: int = 4
    watch_streams: int = 2
    watch_total_s: float = 300.0
    reflection_streams: int = 2
    grpc_max_concurrent_rpcs: int = 0
    # grpc.reflection: it lists every method to anyone past the TLS
    # handshake, so it is off unless asked for (`make run` turns it on).
    reflection: bool = False
    # Client certificates refused at once, by fingerprint or DNS name (lre.runtime.denylist).
    denied_callers_file: Path | None = None
    # OpenTelemetry: spans exported to this OTLP/gRPC collector ("": no tracing).
    tracing_endpoint: str = ""
    # Where a deposit's content waits, encrypted, for its transaction once it
    # is larger than 1 MiB (None: the system's temporary directory). Files
    # there have no name; size it for grpc_threads - 4 letters of
    # max_letter_bytes at once.
    spool_dir: Path | None = None
    # TLS on the gRPC port. With a client CA, callers must present a certificate
    # it issued (mutual TLS), and the DNS name in it gives their role.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    caller_roles: str = (
        "sender-gateway.lre.internal=sender_gateway,"
        "recipient-portal.lre.internal=recipient_portal,"
        "operator.lre.internal=operator,auditor.lre.internal=auditor"
    )
    # Calls per second each caller (client certificate, or address without
    # TLS) may make to one server process, and the burst allowed above it.
    rate_limit_per_s: float = 500.0
    rate_limit_burst: float = 1000.0
    # Mutual TLS to the signer: its CA, and this server's client certificate.
    signer_tls_ca_file: Path | None = None
    signer_tls_cert_file: Path | None = None
    signer_tls_key_file: Path | None = None
    # Production: refuse to start without mutual TLS.
    require_tls: bool = False
    # Processes sharing the gRPC and metrics ports (SO_REUSEPORT): one Python
    # process is bound to one core by its interpreter lock.
    processes: int = 1
    health_check_interval_s: float = 2.0
    # On SIGTERM: NOT_SERVING but still answering for this long (load balancers
    # notice), then no new calls and shutdown_grace_s for calls in flight.
    shutdown_drain_s: float = 2.0
    shutdown_grace_s: float = 30.0
    log_level: str = "INFO"
    # 32 random bytes, hex: encrypts TOTP secrets, webhook secrets and e-mailed
    # codes, keys the hashes of document numbers. Required; `lre-signer
    # dev-setup` writes one for `make run`. After a rotation, the keys before
    # it (files, comma-separated) still decrypt what they encrypted, until
    # `lre-server rekey --secrets` has re-encrypted it (docs/operations.md).
    secrets_key_file: Path | None = None
    secrets_key_files_previous: str = ""
    session_ttl_s: int = 1800
    # Consecutive authentication failures before a lockout, and its length.
    lockout_threshold: int = 5
    lockout_s: int = 900
    # Wrong notice verification codes (VerifyNotification, ClaimLetter) from
    # one source before it is locked out of that recipient's notices.
    notice_code_threshold: int = 10
    # How long a proofing by certificate or eID counts (a document check lasts
    # as long as the document; a certificate never outlives its notAfter).
    proof_validity_days: int = 365
    # PEM bundle of the CAs whose certificates proof identities at level high.
    identity_trust_anchors_file: Path | None = None
    # Revocation of proofing certificates: given, fetch or offline (docs/configuration.md).
    proofing_revocation: str = "given"
    proofing_revocation_cache_s: float = 3600.0
    proofing_revocation_timeout_s: float = 5.0
    proofing_revocation_dir: Path | None = None
    # EU trusted lists (TS 119 612 files, comma-separated), their signers' PEM;
    # with proofing_require_qualified, high by certificate takes a qualified one.
    trusted_list_files: str = ""
    trusted_list_signers_file: Path | None = None
    proofing_require_qualified: bool = False
    # The eID broker (OpenID Connect): issuer, our client id, its keys (a JWKS
    # file kept in sync by the operator), and how its `acr` values map to levels.
    eid_issuer: str = ""
    eid_audience: str = ""
    eid_jwks_file: Path | None = None
    eid_acr_levels: str = "eidas1=low,eidas2=substantial,eidas3=high"
    # The least assurance a sender's identity is proofed at to deposit: high
    # (eIDAS 2 art. 24(1a): physical presence, eID high, a qualified
    # certificate). "substantial" only where the supervisor accepts an
    # equivalent method; recipients need substantial whatever this says.
    sender_min_level: str = "high"
    # The provider, as evidence names it (the issuer of every proof).
    provider_name: str = "LRE development provider"
    # The evidence issuer policy every evidence names (EN 319 522-2
    # EvidenceIssuerPolicyID): the provider's own OID in production. The
    # default is under 2.999, the arc for examples, and identifies nothing.
    evidence_policy_oid: str = "2.999.319522.1"
    # How far the server's clock may be from the TSA's, beyond the TSA's
    # accuracy, before an evidence is refused (docs/evidence.md, "Time"). Zero:
    # both are synchronised to UTC; tests that move only the server's clock widen it.
    evidence_clock_skew_s: float = 0.0
    max_letter_bytes: int = 256 * 1024 * 1024
    # The tariff of one accepted deposit, in the currency's smallest unit.
    tariff_minor: int = 399
    currency: str = "EUR"
    # Where notifications go: "maildir:/path" (make run) or "smtp://[user@]host[:port][?starttls=true]".
    mail_transport: str = "maildir:var/mail"
    smtp_password_file: Path | None = None
    mail_from: str = "LRE <notifications@lre.invalid>"
    # Where recipients accept, refuse and check a notification; named in every e-mail.
    recipient_portal_url: str = "https://lre.invalid/recipient"
    # Days after the notification on which an unanswered letter is recalled to
    # its recipient, comma-separated (1 to 14; empty: no reminders).
    reminder_days: str = "7,13"
    # The workers run in this process unless disabled (then as their own
    # deployment); the outbox in this many lanes, each claiming its own batch.
    run_workers: bool = True
    outbox_lanes: int = 2
    outbox_interval_s: float = 1.0
    outbox_max_attempts: int = 12
    outbox_first_retry_s: float = 30.0
    # Each SMTP command's timeout; a claimed message's lease (a dead dispatcher's
    # claim lasts it; longer than a hand-off; no notice this close to midnight).
    smtp_timeout_s: float = 30.0
    outbox_lease_s: float = 300.0
    # How often windows that closed unanswered get their proof of non-claim.
    expiry_interval_s: float = 60.0
    # How often new log entries get their index (event streams wait for it).
    sequencer_interval_s: float = 0.2
    # Webhooks: first retry after a failed POST (doubling up to an hour), how
    # long an event is retried before it is given up, the whole POST's time
    # (connection to answer), how many are delivered at once (each lane on
    # its own: a slow receiver holds one).
    webhook_first_retry_s: float = 10.0
    webhook_give_up_hours: float = 48.0
    webhook_timeout_s: float = 5.0
    webhook_lanes: int = 4
    # A webhook reaches public addresses only (checked at registration and at
    # each delivery), besides these networks (comma-separated CIDRs): an
    # operator's allowlist; without require_tls, the loopback too.
    webhook_allowed_networks: str = ""
    # PEM CA bundle under which `verify-log` checks the seals of evidence and tree heads.
    seal_trust_anchors_file: Path | None = None
    # PEM of the provider's own seal and TSA certificates (current and retired):
    # `verify-log` requires every seal and timestamp to be by one of them; and
    # its keys declared compromised (JSON, docs/operations.md).
    provider_certificates_file: Path | None = None
    compromised_keys_file: Path | None = None
    # Archive timestamps, renewed before their certificates expire or the sunset
    # (a date), by this TSA ("": the signer's); docs/configuration.md says more.
    archive_renew_days: int = 90
    archive_sunset: str = ""
    archive_tsa_url: str = ""
    archive_tsa_chain_file: Path | None = None
    archive_batch: int = 100
    archive_interval_s: float = 3600.0
    # How often the log's tree head is sealed by the signer (also on demand):
    # entries after the last head are protected only once the next is sealed.
    tree_head_interval_s: float = 60.0
    # Where each sealed head is also published, outside the database
    # (comma-separated): a directory (each head appended to tree-heads.jsonl,
    # for `verify-log --against`, which catches a rolled-back database),
    # syslog+udp://host:port or syslog+unix:///dev/log (a summary line), and
    # http(s):// URLs (a POST of each head line). Syslog and HTTP are retried
    # in the background and never hold the log up.
    tree_head_export: str = ""
    # How often letters are counted by state for the lre_letters gauge.
    census_interval_s: float = 30.0
    # Content deleted this many days after deposit once final (at least 30), unless
    # on legal hold; personal data on its schedule (domain.retention, docs/operations.md).
    content_retention_days: int = 365
    retention_interval_s: float = 3600.0
    party_retention_days: int = 2190
    inactive_party_retention_days: int = 365
    session_retention_days: int = 180
    # Where letters' content (ciphertext only) is kept: "database" (the
    # zero-setup default) or "s3", an S3-compatible object store (Ceph RGW,
    # MinIO, SeaweedFS, AWS S3; docs/operations.md, "Content storage"). With
    # "s3", every new deposit's content goes to the bucket.
    content_store: str = "database"
    # The store's URL ("" for AWS's own endpoints), the bucket, its region.
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    # Files holding the access key id and the secret key.
    s3_access_key_file: Path | None = None
    s3_secret_key_file: Path | None = None
    # Path-style URLs (endpoint/bucket/key), which most self-hosted stores need.
    s3_path_style: bool = False
    # PEM bundle of the CAs the store's HTTPS certificate is checked under
    # (None: the system's).
    s3_ca_file: Path | None = None
    # The Object Lock mode of each object's retention: COMPLIANCE (nobody can
    # shorten it), GOVERNANCE, or "none" for a bucket without Object Lock.
    s3_object_lock: str = "COMPLIANCE"
    # Each request's connection and read timeout.
    s3_timeout_s: float = 10.0
    # How often loose objects are deleted and missing retentions set.
    content_objects_interval_s: float = 60.0

    def production_problems(self) -> list[str]:
        """Each setting that keeps this configuration from running as
        production, named; empty under the development profile."""
        rules = {}
        if self.database_url.startswith("sqlite"):
            rules["database_url"] = "PostgreSQL in production, not SQLite"
        if not self.require_tls:
            rules["require_tls"] = "true in production (mutual TLS on every port)"
        if self.mail_transport.startswith("maildir:"):
            rules["mail_transport"] = "an SMTP relay in production, not a Maildir"
        if self.evidence_policy_oid.startswith("2.999."):
            rules["evidence_policy_oid"] = "the provider's own OID, not an example under 2.999"
        if self.seal_trust_anchors_file is None:
            rules["seal_trust_anchors_file"] = "required in production (verify-log checks under it)"
        if self.provider_certificates_file is None:
            rules["provider_certificates_file"] = (
                "required in production (verify-log checks every seal is the provider's)"
            )
        if self.identity_trust_anchors_file is not None and self.proofing_revocation == "given":
            rules["proofing_revocation"] = (
                "fetch or offline in production: a certificate is not good for lack of its CRL"
            )
        if self.identity_trust_anchors_file is not None and not self.proofing_require_qualified:
            rules["proofing_require_qualified"] = "true in production (eIDAS art. 24(1a)(c))"
        if self.content_store.strip().lower() == "s3" and self.s3_object_lock.lower() == "none":
            rules["s3_object_lock"] = "COMPLIANCE or GOVERNANCE in production (write-once content)"
        if not self.tree_head_target_configured():
            rules["tree_head_export"] = "at least one place outside the database in production"
        return config.production_problems(
            self,
            "LRE_SERVER_",
            ("provider_name", "mail_from", "recipient_portal_url", "caller_roles"),
            rules,
        )

    def database(self) -> str:
        """database_url with the password file's content."""
        return config.with_password(
            self.database_url, self.database_password_file, "LRE_SERVER_DATABASE_PASSWORD_FILE"
        )

    def tree_head_target_configured(self) -> bool:
        return any(t.strip() for t in self.tree_head_export.split(","))

    def stream_limits(self) -> StreamLimits:
        return stream_limits(self)

    def webhook_networks(self) -> tuple[outbound.Network, ...]:
        try:
            networks = outbound.parse_networks(self.webhook_allowed_networks)
        except ValueError:
            problem = "comma-separated networks, as 10.1.0.0/16"
            raise config.ConfigError(f"LRE_SERVER_WEBHOOK_ALLOWED_NETWORKS: {problem}") from None
        return networks if self.require_tls else (*networks, *outbound.LOOPBACK)

    def secrets_key(self) -> SecretsKeys:
        if self.secrets_key_file is None:
            raise config.ConfigError("LRE_SERVER_SECRETS_KEY_FILE: required")
        previous = [Path(p.strip()) for p in self.secrets_key_files_previous.split(",")]
        return SecretsKeys(
            read_key(self.secrets_key_file, "LRE_SERVER_SECRETS_KEY_FILE"),
            tuple(
                read_key(path, "LRE_SERVER_SECRETS_KEY_FILES_PREVIOUS")
                for path in previous
                if str(path) not in ("", ".")
            ),
        )

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.require_tls and self.signer_tls_ca_file is None:
            raise config.ConfigError(
                "LRE_SERVER_REQUIRE_TLS: set LRE_SERVER_SIGNER_TLS_CA_FILE "
                "(mutual TLS to the signer)"
            )
        files = (self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)
        return tls.server_credentials(*files, self.require_tls, "LRE_SERVER_")

    def signer_certificates(self) -> CertificateFiles | None:
        """Mutual TLS to the signer, from files read again when they change."""
        if self.signer_tls_ca_file is None:
            return None
        files = (self.signer_tls_cert_file, self.signer_tls_key_file, self.signer_tls_ca_file)
        return CertificateFiles("signer_client", *files)

    def tree_head_targets(self) -> tuple[Path | None, list[str]]:
        """The export directory (at most one) and the other witnesses."""
        try:
            return split_targets(self.tree_head_export)
        except ValueError as exc:
            raise config.ConfigError(f"LRE_SERVER_TREE_HEAD_EXPORT: {exc}") from None

    def evidence_policy(self) -> str:
        oid = self.evidence_policy_oid.strip()
        if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", oid):
            raise config.ConfigError("LRE_SERVER_EVIDENCE_POLICY_OID: a dotted OID, as 1.2.3")
        return oid

    def outbox_lease(self) -> dt.timedelta:
        if not 4 * self.smtp_timeout_s <= self.outbox_lease_s <= 3600:
            raise config.ConfigError(
                "LRE_SERVER_OUTBOX_LEASE_S: at least 4 times LRE_SERVER_SMTP_TIMEOUT_S"
                " (a hand-off is several SMTP commands), at most 3600"
            )
        return dt.timedelta(seconds=self.outbox_lease_s)

    def reminders(self) -> tuple[int, ...]:
        try:
            days = tuple(int(d) for d in self.reminder_days.split(",") if d.strip())
        except ValueError:
            raise config.ConfigError("LRE_SERVER_REMINDER_DAYS: comma-separated days") from None
        if any(not 0 < d < 15 for d in days):
            raise config.ConfigError("LRE_SERVER_REMINDER_DAYS: days 1 to 14 of the window")
        return days

    def spool(self) -> str | None:
        """The spool directory, checked at start, not at a large deposit."""
        if self.spool_dir is None:
            return None
        if not os.access(self.spool_dir, os.W_OK | os.X_OK) or not self.spool_dir.is_dir():
            raise config.ConfigError("LRE_SERVER_SPOOL_DIR: not a writable directory")
        return str(self.spool_dir)

    def object_store(self) -> ObjectStoreSettings | None:
        """The object store's settings; None when content stays in the database."""
        return object_store_settings(self)

    def mail_sender(self) -> str:
        """mail_from, whose address is every message's envelope sender (bounces go there)."""
        found = email.utils.getaddresses([self.mail_from])
        if len(found) != 1 or email_problem(found[0][1]) is not None:
            raise config.ConfigError("LRE_SERVER_MAIL_FROM: one plain address, as Name <a@b.fr>")
        return self.mail_from

    def sender_level(self) -> AssuranceLevel:
        level = AssuranceLevel.__members__.get(self.sender_min_level.strip().upper())
        if level is None or level < AssuranceLevel.SUBSTANTIAL:
            raise config.ConfigError("LRE_SERVER_SENDER_MIN_LEVEL: substantial or high")
        return level


def load() -> ServerSettings:
    return config.load(ServerSettings, "server")
