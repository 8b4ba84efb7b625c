"""`lre-server`: serve the gRPC services, or migrate the database."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from prometheus_client import start_http_server

from lre import logs
from lre.serving import wait_for_signal
from server import config
from server.api import app
from server.signing import SignerClient
from server.storage import db
from server.workers import repeat

log = logging.getLogger("lre.server")


def serve(settings: config.ServerSettings) -> int:
    engine = db.make_engine(settings.database_url)
    signer = SignerClient(settings.signer_address)
    server = app.build(settings, engine, signer)
    process, dependency_health = server.process, server.health
    host, _, port = settings.metrics_address.rpartition(":")
    metrics_server, _ = start_http_server(int(port), addr=host)
    process.start()
    dependency_health.start()
    stop_workers = threading.Event()
    workers = []
    if settings.run_workers:
        for name, interval, step in (
            ("outbox", settings.outbox_interval_s, server.dispatcher.step),
            ("deadlines", settings.expiry_interval_s, lambda: server.custody.expire_due() > 0),
            (
                "retention",
                settings.retention_interval_s,
                lambda: server.custody.purge_content() > 0,
            ),
        ):
            workers.append(
                threading.Thread(
                    target=repeat, args=(stop_workers, interval, step, name), name=name, daemon=True
                )
            )
    for worker in workers:
        worker.start()
    log.info(
        "server serving",
        extra={"grpc_port": process.port, "metrics_port": metrics_server.server_address[1]},
    )
    wait_for_signal()
    log.info("server stopping")
    process.stop(grace=10)
    stop_workers.set()
    for worker in workers:
        worker.join(timeout=30)
    dependency_health.stop()
    signer.close()
    metrics_server.shutdown()
    engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lre-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve identity, custody and notification over gRPC")
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    args = parser.parse_args(argv)
    settings = config.load()
    logs.configure(settings.log_level)
    if args.command == "migrate":
        db.migrate(db.make_engine(settings.database_url))
        print("database schema up to date")
        return 0
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
