"""The server's processes: ``build`` assembles a server over an engine and a
signer client (the tests pass their own), ``serve`` runs it with the concrete
adapters, ``work`` runs only its workers; each journals its start."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from lre.runtime.config import ConfigError
from lre.runtime.denylist import DenyList
from lre.runtime.http import HttpServer, metrics_route
from lre.runtime.serving import GrpcProcess, wait_for_signal
from lre.runtime.tls import https_context
from lre.runtime.version import export_build_info
from lre.server.adapters.signer import SignerClient
from lre.server.api import validation
from lre.server.api.policy import Authorization, RateLimiter, parse_caller_roles
from lre.server.bootstrap.wiring import (
    CUSTODY,
    IDENTITY,
    NOTIFICATION,
    Services,
    build_services,
    build_workers,
    service_bindings,
)
from lre.server.config import ServerSettings
from lre.server.health import DependencyHealth
from lre.server.services.journal import SecurityJournal
from lre.server.storage import db, models
from lre.server.workers import Scheduled, repeat

logger = logging.getLogger("lre.server")

# What each service needs in order to serve; "" is the process as a whole
# (liveness: it needs nothing, so that an orchestrator never restarts a server
# for an outage of PostgreSQL or the signer), set last so that it turns
# SERVING after every service has been evaluated.
NEEDS: dict[str, tuple[str, ...]] = {
    IDENTITY: ("database",),
    CUSTODY: ("database", "signer", "object_store"),
    NOTIFICATION: ("database",),
    "": (),
}


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

    workers: list[Scheduled]
    # Whether the schema is there (workers wait for it).
    ready: Callable[[], bool]
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for worker, interval, doorbell in self.workers:
            thread = threading.Thread(
                target=repeat,
                args=(self._stop, interval, worker.step, worker.name, self.ready, doorbell),
                name=worker.name,
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for _, _, doorbell in self.workers:
            if doorbell is not None:
                doorbell.open()
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
    schema = db.SchemaGate(engine)
    health = DependencyHealth(
        engine,
        signer,
        process,
        settings.health_check_interval_s,
        NEEDS,
        schema,
        services.objects,
    )
    return Server(process, health, services, WorkerThreads(workers, schema.ready))


def _metrics(settings: ServerSettings) -> HttpServer:
    return HttpServer(
        [metrics_route()],
        settings.metrics_address,
        https_context(settings.tls_cert_file, settings.tls_key_file, "server"),
        settings.metrics_timeout_s,
        name="metrics",
    )


def signer_client(settings: ServerSettings) -> SignerClient:
    return SignerClient(settings.signer_address, certificates=settings.signer_certificates())


def serve(settings: ServerSettings) -> None:
    """Runs the server with its concrete adapters until SIGTERM or SIGINT."""
    export_build_info("lre-server")
    engine = db.make_engine(settings.database())
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
    # The retentions of the last deposits set before the database goes.
    server.services.content.close()
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
    export_build_info("lre-server")
    engine = db.make_engine(settings.database())
    signer = signer_client(settings)
    services = build_services(settings, engine, signer)
    workers = WorkerThreads(build_workers(settings, engine, services), db.SchemaGate(engine).ready)
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
