"""`lre-server`: serve the gRPC services, or migrate the database."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from lre.runtime import jsonlines
from lre.runtime.config import ConfigError
from lre.runtime.pool import MetricsEndpoint, serve_pool
from lre.runtime.serving import wait_for_signal
from lre.runtime.tls import https_context
from lre.server import config
from lre.server.api import app
from lre.server.audit.cli import export_command, verify_export_command, verify_log_command
from lre.server.signing import SignerClient
from lre.server.storage import db
from lre.server.workers import repeat

log = logging.getLogger("lre.server")


def serve(settings: config.ServerSettings) -> int:
    engine = db.make_engine(settings.database_url)
    signer = SignerClient(settings.signer_address, credentials=settings.signer_credentials())
    server = app.build(settings, engine, signer)
    process, dependency_health = server.process, server.health
    metrics = MetricsEndpoint(
        settings.metrics_address, https_context(settings.tls_cert_file, settings.tls_key_file)
    )
    metrics.start()
    process.start()
    dependency_health.start()
    stop_workers = threading.Event()
    workers = []

    def seal_tree_head() -> bool:
        server.events.seal_head()
        return False  # once per interval

    def census() -> bool:
        server.custody.count_by_state()
        return False  # once per interval

    if settings.run_workers:
        for name, interval, step in (
            ("census", settings.census_interval_s, census),
            ("sequencer", settings.sequencer_interval_s, lambda: server.events.sequence() > 0),
            ("webhooks", settings.sequencer_interval_s, server.webhooks.deliver_one),
            ("tree-heads", settings.tree_head_interval_s, seal_tree_head),
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
        extra={"grpc_port": process.port, "metrics_port": metrics.port},
    )
    wait_for_signal()
    log.info("server stopping")
    process.stop(grace=settings.shutdown_grace_s, drain=settings.shutdown_drain_s)
    stop_workers.set()
    for worker in workers:
        worker.join(timeout=30)
    dependency_health.stop()
    signer.close()
    metrics.stop()
    engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lre-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve identity, custody and notification over gRPC")
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    commands.add_parser(
        "verify-log",
        help="replay the log from the database; report entries deleted, changed or out of order",
    ).add_argument("--against", type=Path, help="tree heads published outside the database")
    exporting = commands.add_parser("export", help="write a verifiable archive of a period")
    exporting.add_argument("--from", dest="start", required=True, help="ISO 8601, inclusive")
    exporting.add_argument("--to", dest="end", required=True, help="ISO 8601, exclusive")
    exporting.add_argument("out", type=Path)
    checking = commands.add_parser("verify-export", help="check an archive, with no database")
    checking.add_argument("out", type=Path)
    checking.add_argument("--anchors", type=Path, help="trust anchors (else the configured)")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
        jsonlines.configure(settings.log_level)
        if args.command == "serve":
            # Refuse a bad configuration before opening anything: plaintext
            # where TLS is required, unreadable certificates or keys.
            settings.server_credentials()
            settings.secrets_key()
    except (ConfigError, OSError, ValueError) as exc:
        print(f"lre-server: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "verify-log":
        return verify_log_command(settings, args.against)
    if args.command == "export":
        return export_command(settings, args.start, args.end, args.out)
    if args.command == "verify-export":
        return verify_export_command(settings, args.out, args.anchors)
    if args.command == "migrate":
        db.migrate(db.make_engine(settings.database_url))
        print("database schema up to date")
        return 0
    if settings.processes > 1:
        if settings.grpc_address.endswith(":0") or settings.metrics_address.endswith(":0"):
            raise SystemExit("several server processes need fixed ports")
        return serve_pool(
            [sys.executable, "-m", "lre.server", "serve"],
            {"LRE_SERVER_PROCESSES": "1"},
            settings.processes,
        )
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
