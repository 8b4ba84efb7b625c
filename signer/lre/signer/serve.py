"""The signer's serving processes: one worker, or a pool of them on the same ports."""

from __future__ import annotations

import logging
import os
import sys

from lre.runtime import pool
from lre.runtime.denylist import DenyList
from lre.runtime.serving import GrpcProcess, ServiceBinding, wait_for_signal
from lre.runtime.tls import https_context
from lre.runtime.version import export_build_info
from lre.signer import config
from lre.signer.app import Signer
from lre.signer.http import http_server, metrics_server
from lre.signer.policy import CallerPolicy
from lre.signer.service import SigningServicer
from lre.v1 import signing_pb2, signing_pb2_grpc

log = logging.getLogger("lre.signer")
SERVICE_NAME = signing_pb2.DESCRIPTOR.services_by_name["SigningService"].full_name


def serve_worker(settings: config.SignerSettings) -> int:
    credentials = settings.server_credentials()  # before anything: refuses a bad TLS setup
    export_build_info("lre-signer")
    signer = Signer(settings)
    policy = CallerPolicy(
        settings.signer_callers, settings.timestamp_callers, tls=credentials is not None
    )
    process = GrpcProcess(
        [
            ServiceBinding(
                SERVICE_NAME,
                signing_pb2_grpc.add_SigningServiceServicer_to_server,
                SigningServicer(signer),
            )
        ],
        settings.grpc_address,
        max_workers=settings.grpc_threads,
        log_rpcs=settings.log_rpcs,
        guard=policy,
        credentials=credentials,
        health_address=settings.health_address or None,
        limits=settings.stream_limits(),
        reflection_enabled=settings.reflection,
        role_of=policy.role_label,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs or None,
        deny=DenyList(settings.denied_callers_file),
    )
    # Connect before taking traffic: with SO_REUSEPORT a worker receives
    # connections as soon as it listens. The process as a whole ("",
    # liveness) serves whatever the token does: restarting the signer does
    # not bring an HSM back, the monitor reconnects by itself.
    process.set_serving(True, "")
    process.set_serving(signer.check_health(), SERVICE_NAME)
    context = https_context(settings.tls_cert_file, settings.tls_key_file, "signer")
    apart = bool(settings.metrics_address.strip())
    http = http_server(signer, settings.http_address, context, settings.http_timeout_s, not apart)
    listeners = [http]
    if apart:
        listeners.append(metrics_server(settings.metrics_address, context, settings.http_timeout_s))
    signer.start_monitor(lambda healthy: process.set_serving(healthy, SERVICE_NAME))
    process.start()
    for listener in listeners:
        listener.start()
    log.info(
        "signer serving",
        extra={
            "grpc_port": process.port,
            "http_port": http.port,
            "metrics_port": listeners[-1].port,
            "pid": os.getpid(),
        },
    )
    wait_for_signal()
    log.info("signer stopping")
    process.stop(grace=5)
    for listener in listeners:
        listener.stop()
    signer.close()
    return 0


def serve_pool(settings: config.SignerSettings, processes: int) -> int:
    if any(
        a.endswith(":0")
        for a in (
            settings.grpc_address,
            settings.http_address,
            settings.health_address,
            settings.metrics_address,
        )
    ):
        raise SystemExit("several signer processes need fixed ports")
    return pool.serve_pool(
        [sys.executable, "-m", "lre.signer", "serve"], {"LRE_SIGNER_PROCESSES": "1"}, processes
    )
