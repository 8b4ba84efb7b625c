"""`lre-server`: serve the gRPC services, or migrate the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lre.runtime import jsonlines
from lre.runtime.config import ConfigError
from lre.runtime.pool import serve_pool
from lre.server import bootstrap, config
from lre.server.audit.cli import export_command, verify_export_command, verify_log_command
from lre.server.storage import db


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
    bootstrap.serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
