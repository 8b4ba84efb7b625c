"""Health that follows what the services need: the database and the signer."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lre.runtime.serving import GrpcProcess
from lre.server.adapters.signer import SignerClient
from lre.server.storage import db

logger = logging.getLogger("lre.server")


class DependencyHealth:
    """Polls the database and the signer; each service is SERVING while what
    it needs answers, so that a load balancer sends work only where it can be done."""

    def __init__(
        self,
        engine: Engine,
        signer: SignerClient,
        process: GrpcProcess,
        interval_s: float,
        needs: dict[str, tuple[str, ...]],
        schema: db.SchemaGate,
    ) -> None:
        """``needs``: what each service ("" the process) needs, of "database" and "signer"."""
        self._needs = needs
        self._engine = engine
        self._signer = signer
        self._process = process
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._schema = schema
        self._thread = threading.Thread(target=self._run, name="dependency-health", daemon=True)

    def _database_up(self) -> bool:
        try:
            db.ping(self._engine)
            if not self._schema.ready():
                return False
        except SQLAlchemyError as exc:
            logger.warning("database unreachable", extra={"error_type": type(exc).__name__})
            return False
        return True

    def check(self) -> dict[str, bool]:
        up = {"database": self._database_up(), "signer": self._signer.serving()}
        return {service: all(up[d] for d in needs) for service, needs in self._needs.items()}

    def _run(self) -> None:
        last: dict[str, bool] = {}
        while not self._stop.is_set():
            for service, serving in self.check().items():
                if last.get(service) != serving:
                    self._process.set_serving(serving, service)
                    logger.info(
                        "health", extra={"service": service or "(server)", "serving": serving}
                    )
                    last[service] = serving
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
