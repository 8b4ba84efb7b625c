"""Health that follows what the services need: the database, the signer and,
when content is kept there, the object store."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lre.runtime.serving import GrpcProcess
from lre.server.adapters.object_store import ObjectStore
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
        objects: ObjectStore | None = None,
    ) -> None:
        """``needs``: what each service ("" the process) needs, of "database",
        "signer" and "object_store" (always up without one)."""
        self._needs = needs
        self._engine = engine
        self._signer = signer
        self._process = process
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._schema = schema
        self._objects = objects
        # Why the object store is not serving, as last seen (None: it is).
        self.object_store_problem: str | None = None
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

    def _object_store_up(self) -> bool:
        if self._objects is None:
            return True
        problem = self._objects.problem()
        if problem != self.object_store_problem:
            # The reason (an unreachable store, refused credentials) once per change.
            if problem is None:
                logger.info("object store reachable")
            else:
                logger.warning("object store not serving", extra={"reason": problem})
            self.object_store_problem = problem
        return problem is None

    def check(self) -> dict[str, bool]:
        up = {
            "database": self._database_up(),
            "signer": self._signer.serving(),
            "object_store": self._object_store_up(),
        }
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
