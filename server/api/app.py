"""The server process: its gRPC services, health that follows the database,
and Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lre.serving import GrpcProcess, ServiceBinding
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from server.api.identity import IdentityServicer
from server.config import ServerSettings
from server.services.identity import IdentityPolicy, IdentityService
from server.storage import db

log = logging.getLogger("lre.server")


def _name(module: object, service: str) -> str:
    return module.DESCRIPTOR.services_by_name[service].full_name  # type: ignore[attr-defined,no-any-return]


def service_bindings(identity: IdentityService) -> list[ServiceBinding]:
    # The generated base servicers answer UNIMPLEMENTED for every RPC until
    # the issue that implements it replaces them.
    return [
        ServiceBinding(
            _name(identity_pb2, "IdentityService"),
            identity_pb2_grpc.add_IdentityServiceServicer_to_server,
            IdentityServicer(identity),  # type: ignore[abstract]  # proofing by certificate and eID: UNIMPLEMENTED
        ),
        ServiceBinding(
            _name(custody_pb2, "CustodyService"),
            custody_pb2_grpc.add_CustodyServiceServicer_to_server,
            custody_pb2_grpc.CustodyServiceServicer(),  # type: ignore[abstract]
        ),
        ServiceBinding(
            _name(notification_pb2, "NotificationService"),
            notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            notification_pb2_grpc.NotificationServiceServicer(),  # type: ignore[abstract]
        ),
    ]


class DatabaseHealth:
    """Polls the database; every service depends on it."""

    def __init__(self, engine: Engine, process: GrpcProcess, interval_s: float) -> None:
        self._engine = engine
        self._process = process
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-health", daemon=True)

    def check(self) -> bool:
        try:
            db.ping(self._engine)
        except SQLAlchemyError as exc:
            log.warning("database unreachable", extra={"error_type": type(exc).__name__})
            return False
        return True

    def _run(self) -> None:
        last: bool | None = None
        while not self._stop.is_set():
            healthy = self.check()
            if healthy != last:
                self._process.set_serving(healthy)
                last = healthy
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def build(settings: ServerSettings, engine: Engine) -> tuple[GrpcProcess, DatabaseHealth]:
    identity = IdentityService(
        db.sessions(engine),
        IdentityPolicy(
            secrets_key=settings.secrets_key(),
            session_ttl=dt.timedelta(seconds=settings.session_ttl_s),
            lockout_threshold=settings.lockout_threshold,
            lockout=dt.timedelta(seconds=settings.lockout_s),
        ),
    )
    process = GrpcProcess(
        service_bindings(identity), settings.grpc_address, max_workers=settings.grpc_threads
    )
    process.set_serving(False)
    return process, DatabaseHealth(engine, process, settings.health_check_interval_s)
