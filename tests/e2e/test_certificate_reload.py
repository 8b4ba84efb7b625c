"""Transport certificates renewed on disk reach new handshakes without a
restart: the server's and the signer's listeners present the new
certificate, the server's channel to the signer presents its new client
certificate, and the expiry metric follows."""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from lre.dev.tls import create_dev_tls
from lre.signer.devsetup import DevPaths
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.signer import signer_env

CUSTODY = "lre.v1.CustodyService"


def _serial(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number


def _unchecked() -> ssl.SSLContext:
    # What is presented is the question here, not whether to trust it (the
    # development CAs share one subject name, which a bundle cannot tell apart).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _presented(port: int, client: tuple[Path, Path]) -> int:
    """The serial of the certificate a new TLS handshake on ``port`` presents."""
    context = _unchecked()
    context.load_cert_chain(*client)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _replace(source: Path, target: Path) -> None:
    """As a renewal does: the new file written beside, then renamed over."""
    staged = target.with_suffix(".new")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def _health(port: int, trusted: Path, caller: tuple[Path, Path], service: str = "") -> int | None:
    credentials = grpc.ssl_channel_credentials(
        trusted.read_bytes(), caller[1].read_bytes(), caller[0].read_bytes()
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
        except grpc.RpcError:
            return None
        return int(reply.status)


def _expiry(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10, context=_unchecked()) as reply:
        page = reply.read().decode()
    (build,) = (
        s
        for f in text_string_to_metric_families(page)
        if f.name == "lre_build_info"
        for s in f.samples
    )
    assert build.labels["part"] == "lre-server" and build.value == 1
    assert build.labels["version"] == importlib.metadata.version("lre-server")
    return {
        s.labels["which"]: s.value
        for f in text_string_to_metric_families(page)
        if f.name == "lre_transport_certificate_expiry_timestamp_seconds"
        for s in f.samples
    }


def test_renewed_certificates_are_presented_without_a_restart(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    # Three CAs: the processes check their callers against the old one, the
    # renewed service certificates come from another (a new serial, and the
    # server is told to trust it with them), and the server's first client
    # certificate from a third, which the signer refuses.
    old, new = create_dev_tls(tmp_path / "old"), create_dev_tls(tmp_path / "new")
    renewed = create_dev_tls(tmp_path / "renewed")
    live = tmp_path / "live"
    live.mkdir()
    for name, source in {
        "service.pem": old.service_cert,
        "service.key": old.service_key,
        # The server's client certificate starts from the CA the signer does
        # not trust: the signer refuses it until the renewal lands.
        "client.pem": new.client_cert("server"),
        "client.key": new.client_key("server"),
        "signer-ca.pem": old.ca,
    }.items():
        shutil.copyfile(source, live / name)
    operator = (old.client_cert("operator"), old.client_key("operator"))
    service_tls = {
        "TLS_CERT_FILE": str(live / "service.pem"),
        "TLS_KEY_FILE": str(live / "service.key"),
        "TLS_CLIENT_CA_FILE": str(old.ca),
    }
    signer_port, http_port = free_port(), free_port()
    signer = {
        **signer_env(dev_var, signer_port, http_port),
        **{f"LRE_SIGNER_{k}": v for k, v in service_tls.items()},
    }
    key = tmp_path / "server.key"
    key.write_text(secrets.token_hex(32))
    server_port, metrics_port = free_port(), free_port()
    server = {
        "LRE_CONFIG": str(dev_var.config),
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{server_port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "LRE_SERVER_SIGNER_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SERVER_HEALTH_CHECK_INTERVAL_S": "0.3",
        "LRE_SERVER_MAIL_TRANSPORT": f"maildir:{tmp_path / 'mail'}",
        **{f"LRE_SERVER_{k}": v for k, v in service_tls.items()},
        "LRE_SERVER_SIGNER_TLS_CA_FILE": str(live / "signer-ca.pem"),
        "LRE_SERVER_SIGNER_TLS_CERT_FILE": str(live / "client.pem"),
        "LRE_SERVER_SIGNER_TLS_KEY_FILE": str(live / "client.key"),
    }
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        env={**os.environ, **server},
        check=True,
        capture_output=True,
    )
    with (
        running([str(BIN / "lre-signer"), "serve"], signer, tmp_path / "signer.log"),
        running([str(BIN / "lre-server"), "serve"], server, tmp_path / "server.log"),
    ):
        assert wait_for(lambda: _health(signer_port, old.ca, operator) is not None, 60), (
            tmp_path / "signer.log"
        ).read_text()
        assert wait_for(lambda: _health(server_port, old.ca, operator) is not None, 60), (
            tmp_path / "server.log"
        ).read_text()
        # The gRPC ports and the HTTPS ones (/metrics, /tsa) alike.
        ports = (signer_port, server_port, metrics_port, http_port)
        for port in ports:
            assert _presented(port, operator) == _serial(old.service_cert)
        # The signer refuses the server's client certificate: custody cannot serve.
        assert (
            _health(server_port, old.ca, operator, CUSTODY)
            != health_pb2.HealthCheckResponse.SERVING
        )
        metrics = f"https://127.0.0.1:{metrics_port}/metrics"
        before = _expiry(metrics)
        assert set(before) == {"server", "signer_client"}

        _replace(renewed.service_cert, live / "service.pem")
        _replace(renewed.service_key, live / "service.key")
        _replace(old.client_cert("server"), live / "client.pem")
        _replace(old.client_key("server"), live / "client.key")
        _replace(renewed.ca, live / "signer-ca.pem")

        # New handshakes, same processes: the renewed certificate.
        for port in ports:
            assert wait_for(
                lambda p=port: _presented(p, operator) == _serial(renewed.service_cert),
                timeout=10,
            )
        # The server's channel to the signer now presents the renewed client certificate.
        assert wait_for(
            lambda: (
                _health(server_port, renewed.ca, operator, CUSTODY)
                == health_pb2.HealthCheckResponse.SERVING
            ),
            timeout=20,
        ), (tmp_path / "server.log").read_text()
        after = _expiry(metrics)
        renewed_expiry = x509.load_pem_x509_certificate(
            renewed.service_cert.read_bytes()
        ).not_valid_after_utc.timestamp()
        assert after["server"] == pytest.approx(renewed_expiry)
        assert '"transport certificate reloaded"' in (tmp_path / "server.log").read_text()
