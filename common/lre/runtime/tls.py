"""TLS for both processes: gRPC server credentials (mutual when a client CA is
given), the HTTPS context of the HTTP ports, and a client's channel."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from lre.runtime.config import ConfigError


def server_credentials(
    cert: Path | None, key: Path | None, client_ca: Path | None, required: bool, prefix: str
) -> grpc.ServerCredentials | None:
    """Mutual TLS when configured; None (plaintext) only where allowed."""
    if cert is None or key is None:
        if required:
            raise ConfigError(
                f"{prefix}REQUIRE_TLS: set {prefix}TLS_CERT_FILE, {prefix}TLS_KEY_FILE "
                f"and {prefix}TLS_CLIENT_CA_FILE"
            )
        return None
    if required and client_ca is None:
        raise ConfigError(
            f"{prefix}REQUIRE_TLS: callers are identified by client certificates; "
            f"set {prefix}TLS_CLIENT_CA_FILE"
        )
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


def https_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """For /metrics and /tsa: server authentication only (scrapers and TSA
    clients carry no client certificate)."""
    if cert is None or key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def channel_credentials(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
