"""TLS for both processes: gRPC server credentials (mutual when a client CA is
given; the files read again when they change, lre.runtime.certfiles), the
HTTPS context of the HTTP ports, and a client's channel."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import grpc

from lre.runtime.certfiles import CertificateFiles, Loaded
from lre.runtime.config import ConfigError

log = logging.getLogger("lre.runtime.tls")


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
    files = CertificateFiles(prefix.removeprefix("LRE_").strip("_").lower(), cert, key, client_ca)
    served = files.current

    def configuration(loaded: Loaded) -> grpc.ServerCertificateConfiguration:
        assert loaded.key is not None and loaded.cert is not None
        return grpc.ssl_server_certificate_configuration(
            [(loaded.key, loaded.cert)], root_certificates=loaded.ca
        )

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake: None keeps the current files.
        nonlocal served
        try:
            loaded = files.refresh()
            if loaded.generation == served.generation:
                return None
            served = loaded
            return configuration(loaded)
        except Exception:  # never fail a handshake for the reload's sake
            log.exception("transport certificate reload failed")
            return None

    return grpc.dynamic_ssl_server_credentials(
        configuration(served),
        fetch,  # type: ignore[arg-type]  # the stubs forget that None means unchanged
        require_client_authentication=client_ca is not None,
    )


def https_context(
    cert: Path | None, key: Path | None, which: str = "https"
) -> ssl.SSLContext | None:
    """For /metrics and /tsa: server authentication only (scrapers and TSA
    clients carry no client certificate). The files are read again when they
    change: each handshake asks (lre.runtime.certfiles), and one that finds
    them renewed continues on a context made from the new ones."""
    if cert is None or key is None:
        return None
    files = CertificateFiles(which, cert, key)

    def made() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)  # from the paths: ssl takes no bytes
        return context

    generation, serving = files.current.generation, made()

    def renewed(tls: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        # Called early in every handshake, with or without SNI.
        nonlocal generation, serving
        try:
            loaded = files.refresh()
            if loaded.generation != generation:
                generation, serving = loaded.generation, made()
            tls.context = serving
        except Exception:  # never fail a handshake for the reload's sake
            log.exception("transport certificate reload failed")

    listening = made()
    listening.sni_callback = renewed
    return listening


def reloading_channel_credentials(files: CertificateFiles) -> grpc.ChannelCredentials:
    """A client's credentials from the current reading of its files."""
    loaded = files.current
    return grpc.ssl_channel_credentials(
        root_certificates=loaded.ca, private_key=loaded.key, certificate_chain=loaded.cert
    )


def channel_credentials(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
