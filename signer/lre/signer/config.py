"""Signer settings: defaults here, overridable by ``[signer]`` in the ``LRE_CONFIG``
TOML file and by ``LRE_SIGNER_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from lre.runtime import config, tls
from lre.runtime.limits import StreamLimits, stream_limits


@dataclass(frozen=True)
class SignerSettings:
    # "production" refuses to start while a setting keeps a development
    # default (the local clock, plaintext, the development PKI files, the
    # development CA, the callers' names): see the server's profile.
    profile: str = "development"
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    token_label: str = "lre"  # noqa: S105 -- a label, not a secret
    # The user PIN is read from this file, else from LRE_SIGNER_PIN. Never logged.
    pin_file: Path | None = None
    seal_key_label: str = "lre-seal"
    tsa_key_label: str = "lre-tsa"
    # The wrap key that wraps content keys; older wrap keys, comma-separated,
    # still unwrap what was made under them (see docs/hsm.md, rotation).
    wrap_key_label: str = "lre-wrap"
    wrap_key_labels_previous: str = ""
    # "aes-gcm", or "aes-kw" (RFC 3394 key wrap) for tokens without AES-GCM or
    # that refuse a caller's IV, or "aes-kw-ecb" (the same bytes, computed from
    # the token's AES-ECB) where no key wrap is offered. Blobs of any kind
    # unwrap under all (docs/hsm.md).
    wrap_mechanism: str = "aes-gcm"
    # PEM bundle of the CA certificates above the seal and TSA certificates.
    ca_chain_file: Path = Path("var/pki/ca-chain.pem")
    # PEM CRLs of those CAs, embedded in PAdES signatures (level B-LT). Read
    # again whenever the file changes: the CA's publication replaces it.
    crl_file: Path = Path("var/pki/crls.pem")
    grpc_address: str = "127.0.0.1:50052"
    # Optional plaintext listener serving grpc.health.v1 only ("" none).
    health_address: str = ""
    # RFC 3161 over HTTP at /tsa.
    http_address: str = "127.0.0.1:8318"
    # Prometheus /metrics on a listener of its own ("": beside /tsa on
    # http_address, development only): /tsa may be open to TSA clients.
    metrics_address: str = ""
    # On the HTTP port: the most a client may take for a TLS handshake, a
    # request head, a body, or stay idle between requests; then it is cut.
    http_timeout_s: float = 10.0
    # Worker processes sharing the ports (SO_REUSEPORT). PKCS#11 calls are
    # serialised inside each process; parallelism comes from processes.
    processes: int = 1
    grpc_threads: int = 8
    # The admission gate's limits, as the server's settings of the same names
    # describe them: no caller holds the signer's threads.
    stream_idle_s: float = 30.0
    stream_total_s: float = 900.0
    streams_per_caller: int = 4
    streams_per_user: int = 4
    reserved_threads: int = 4
    watch_streams: int = 2
    watch_total_s: float = 300.0
    reflection_streams: int = 1
    grpc_max_concurrent_rpcs: int = 0
    # grpc.reflection on the gRPC port: off unless asked for (`make run` does).
    reflection: bool = False
    # OpenTelemetry: spans exported to this OTLP/gRPC collector ("": no tracing).
    tracing_endpoint: str = ""
    # Client certificates refused at once (PERMISSION_DENIED), by SHA-256
    # fingerprint or DNS name, one a line; read again when it changes, no
    # restart (lre.runtime.denylist).
    denied_callers_file: Path | None = None
    tsa_policy_oid: str = "0.4.0.2023.1.1"
    tsa_accuracy_ms: int = 1000
    # Adds the ETSI EN 319 422 qcStatements (esi4-qtstStatement-1) to tokens.
    qualified: bool = False
    # Where the signature timestamps of seals and PDF proofs come from, in
    # fallback order: "builtin" (this process's TSA) and the names of external
    # RFC 3161 TSAs described in external_tsa_file (signer.timesources).
    timestamp_sources: str = "builtin"
    external_tsa_file: Path | None = None
    # The built-in TSA's clock sources, comma-separated ntp://host[:port]
    # (production: at least three). clock_reference, one source, is the older
    # spelling and joins them. None: the local clock is trusted (development
    # only; logged as a warning).
    clock_references: str = ""
    clock_reference: str = ""
    # The local clock must be shown within this of UTC (offset plus the
    # measurement's uncertainty) by clock_quorum sources (0: a strict
    # majority of those configured), else the TSA refuses to stamp.
    clock_max_offset_ms: int = 500
    clock_quorum: int = 0
    clock_check_interval_s: float = 16.0
    # Each synchronisation check (every source's offset and result, and the
    # decision), appended as JSON lines and flushed to disk: the history an
    # assessor is shown. None: logged only.
    clock_journal_file: Path | None = None
    health_check_interval_s: float = 2.0
    log_level: str = "INFO"
    log_rpcs: bool = True
    # TLS on both ports; with a client CA, the gRPC port takes only callers
    # (the server) with a certificate it issued. /tsa and /metrics use HTTPS.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Production: refuse to start without mutual TLS.
    require_tls: bool = False
    # Who may call the gRPC port (signer/lre/signer/policy.py), by the DNS name in
    # their client certificate, comma-separated. The seal and wrap keys: the
    # server only. Timestamps and certificate chains: these callers too.
    signer_callers: str = "server.lre.internal"
    timestamp_callers: str = "operator.lre.internal,auditor.lre.internal"

    def server_credentials(self) -> grpc.ServerCredentials | None:
        return tls.server_credentials(
            self.tls_cert_file,
            self.tls_key_file,
            self.tls_client_ca_file,
            self.require_tls,
            "LRE_SIGNER_",
        )

    def production_problems(self) -> list[str]:
        """Each setting that keeps this configuration from running as
        production, named; empty under the development profile."""
        rules = {}
        if not self.require_tls:
            rules["require_tls"] = "true in production (mutual TLS on every port)"
        if len(self.clock_sources()) < 3:
            rules["clock_references"] = "at least three NTP sources in production"
        if self.clock_journal_file is None:
            rules["clock_journal_file"] = "a file in production (the synchronisation history)"
        if not self.metrics_address.strip():
            rules["metrics_address"] = "a listener of its own in production, not the /tsa port"
        return config.production_problems(
            self, "LRE_SIGNER_", ("ca_chain_file", "crl_file", "signer_callers"), rules
        )

    def clock_sources(self) -> list[str]:
        """Every configured clock source, clock_reference first."""
        joined = f"{self.clock_reference},{self.clock_references}"
        return list(dict.fromkeys(r.strip() for r in joined.split(",") if r.strip()))

    def stream_limits(self) -> StreamLimits:
        return stream_limits(self)

    def pin(self) -> str | None:
        return config.read_secret(self.pin_file, "LRE_SIGNER_PIN")


def load() -> SignerSettings:
    return config.load(SignerSettings, "signer")
