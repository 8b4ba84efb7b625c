"""`lre-server`: serve the gRPC services, run the workers, migrate the database, re-encrypt keys."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from lre.runtime import jsonlines, tracing
from lre.runtime.config import ConfigError
from lre.runtime.ports import PortTaken, claim
from lre.runtime.version import add_version_option
from lre.server import config

# The database, services and gRPC modules are imported by the command that
# needs them: a start refused (its ports held, a bad setting) answers at once
# instead of after seconds of imports.


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _not_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:  # NaN too
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lre-server", description=__doc__)
    add_version_option(parser, "lre-server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve identity, custody and notification over gRPC")
    commands.add_parser(
        "work", help="run only the workers (outbox, sequencer, expiry...): no gRPC port"
    )
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    verifying = commands.add_parser(
        "verify-log",
        help="replay the log from the database; report entries deleted, changed or out of order",
    )
    verifying.add_argument("--against", type=Path, help="tree heads published outside the database")
    verifying.add_argument(
        "--compromised",
        type=Path,
        help="the provider's keys declared compromised (JSON; else compromised_keys_file)",
    )
    exporting = commands.add_parser("export", help="write a verifiable archive of a period")
    for long_running in (verifying, exporting):
        long_running.add_argument(
            "--progress-every",
            type=_not_negative,
            default=10.0,
            metavar="SECONDS",
            help="a progress line on stderr at most this often (0: none; default 10)",
        )
    exporting.add_argument("--from", dest="start", required=True, help="ISO 8601, inclusive")
    exporting.add_argument("--to", dest="end", required=True, help="ISO 8601, exclusive")
    exporting.add_argument("out", type=Path)
    checking = commands.add_parser("verify-export", help="check an archive, with no database")
    checking.add_argument("out", type=Path)
    checking.add_argument("--anchors", type=Path, help="trust anchors (else the configured)")
    checking.add_argument(
        "--provider",
        type=Path,
        help="the provider's seal certificates, current and retired, and its TSAs' "
        "(else provider_certificates_file)",
    )
    rekeying = commands.add_parser(
        "rekey",
        help="after a key rotation: re-wrap content keys under the signer's current wrap key "
        "(resumable: run it again after an interruption)",
    )
    rekeying.add_argument(
        "--secrets",
        action="store_true",
        help="re-encrypt the secrets at rest under the current secrets key instead",
    )
    rekeying.add_argument(
        "--batch", type=_positive, default=256, help="keys per signer call and commit"
    )
    moving = commands.add_parser(
        "move-content",
        help="move kept letter content to the object store, or back to the database"
        " (resumable, each move verified)",
    )
    moving.add_argument("--to", choices=("object-store", "database"), required=True)
    moving.add_argument("--batch", type=_positive, default=100, help="letters looked up per query")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
        jsonlines.configure(settings.log_level)
        # Alembic announces each of its plugins at INFO when it is imported:
        # a dozen lines of no use to an operator on every start.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        if args.command in ("serve", "work", "rekey"):
            # Refuse a bad configuration before opening anything: plaintext
            # where TLS is required, unreadable certificates or keys.
            if problems := settings.production_problems():
                raise ConfigError("profile production: " + "; ".join(problems))
            settings.server_credentials()
            settings.secrets_key()
        if args.command == "serve":
            from lre.server.bootstrap.wiring import qualified_lists

            # A trusted list whose signature does not verify stops the start.
            qualified_lists(settings)
        # An unreadable password file is a configuration error, said at once.
        settings.database()
        if args.command in ("serve", "work"):
            tracing.configure(
                "lre-server", settings.tracing_endpoint, "LRE_SERVER_TRACING_ENDPOINT"
            )
    except (ConfigError, OSError, ValueError) as exc:
        print(f"lre-server: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "work"):
        jsonlines.capture_native_stderr()
    if args.command in (
        "verify-log",
        "export",
        "verify-export",
        "migrate",
        "rekey",
        "move-content",
    ):
        return _one_off(args, settings)
    # Held until the process exits; the processes of a pool are its children.
    try:
        _ports = claim(
            {"metrics_address": settings.metrics_address}
            if args.command == "work"
            else {
                "grpc_address": settings.grpc_address,
                "health_address": settings.health_address,
                "metrics_address": settings.metrics_address,
            }
        )
    except PortTaken as exc:
        print(f"lre-server: {exc}", file=sys.stderr)
        return 2
    from lre.server import bootstrap

    if args.command == "work":
        bootstrap.work(settings)
        return 0
    if settings.processes > 1:
        addresses = (settings.grpc_address, settings.metrics_address, settings.health_address)
        if any(a.endswith(":0") for a in addresses):
            raise SystemExit("several server processes need fixed ports")
        from lre.runtime.pool import serve_pool

        return serve_pool(
            [sys.executable, "-m", "lre.server", "serve"],
            {"LRE_SERVER_PROCESSES": "1"},
            settings.processes,
        )
    bootstrap.serve(settings)
    return 0


def _one_off(args: argparse.Namespace, settings: config.ServerSettings) -> int:
    """An operator's command: what is wrong around it (the database, a file
    it was given) is one line naming it and an exit status, not a traceback."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        if args.command == "migrate":
            from lre.server.storage import db

            db.migrate(db.make_engine(settings.database()))
            print("database schema up to date")
            return 0
        if args.command == "rekey":
            return _rekey(settings, secrets_only=args.secrets, batch=args.batch)
        if args.command == "move-content":
            return _move_content(settings, args.to == "object-store", args.batch)
        return _audit(args, settings)
    except ArgumentError:
        # Not the URL itself: it may hold a password.
        print(f"lre-server {args.command}: database_url is not a database URL", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = str(exc.orig or exc).splitlines()[0]
        print(f"lre-server {args.command}: the database is unreachable: {reason}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"lre-server {args.command}: {exc}", file=sys.stderr)
        return 2


def _audit(args: argparse.Namespace, settings: config.ServerSettings) -> int:
    from lre.server.audit.cli import export_command, verify_export_command, verify_log_command

    if args.command == "verify-log":
        return verify_log_command(settings, args.against, args.progress_every, args.compromised)
    if args.command == "export":
        return export_command(settings, args.start, args.end, args.out, args.progress_every)
    return verify_export_command(settings, args.out, args.anchors, args.provider)


def _rekey(settings: config.ServerSettings, secrets_only: bool, batch: int) -> int:
    import grpc

    from lre.server import bootstrap
    from lre.server.domain.errors import DependencyUnavailable
    from lre.server.services import rekey
    from lre.server.storage import db
    from lre.server.storage.store import Stores

    stores = Stores(db.sessions(db.make_engine(settings.database())))

    def report(what: str, progress: rekey.Progress) -> None:
        print(f"{what}: {progress.examined} examined, {progress.changed} re-encrypted", flush=True)

    if secrets_only:
        done = rekey.reencrypt_secrets(stores, settings.secrets_key(), batch, report)
    else:
        signer = bootstrap.signer_client(settings)
        try:
            done = rekey.rewrap_content_keys(stores, signer, batch, report)
        except DependencyUnavailable as exc:
            # Down, or not this server's to reach: its TLS settings (signer_tls_*)
            # missing where the signer requires client certificates looks the same.
            print(
                f"lre-server: the signer at {settings.signer_address} is unavailable ({exc}):"
                " check it runs and the signer_tls_* settings, then run rekey again",
                file=sys.stderr,
            )
            return 1
        except grpc.RpcError as exc:
            # A blob the signer cannot open (under a wrap key it no longer
            # lists, or damaged): what is committed stays, the rest waits.
            print(
                f"lre-server: the signer refused a batch: {exc.code().name}: {exc.details()}",
                file=sys.stderr,
            )
            return 1
        finally:
            signer.close()
    print(f"rekey done: {done.examined} examined, {done.changed} re-encrypted")
    return 0


def _move_content(settings: config.ServerSettings, to_objects: bool, batch: int) -> int:
    from lre.server.bootstrap.wiring import build_content
    from lre.server.domain.errors import DependencyUnavailable
    from lre.server.services.custody import content_move
    from lre.server.services.custody.content_store import ObjectContent
    from lre.server.storage import db
    from lre.server.storage.store import Stores

    stores = Stores(db.sessions(db.make_engine(settings.database())))
    content, _ = build_content(settings, stores, dt.timedelta(days=settings.content_retention_days))
    if not isinstance(content, ObjectContent):
        print("lre-server: move-content needs content_store = s3 and its settings", file=sys.stderr)
        return 2

    def report(progress: content_move.Progress) -> None:
        print(f"content: {progress.examined} examined, {progress.moved} moved", flush=True)

    try:
        done = content_move.move_content(stores, content, to_objects, batch, report)
    except DependencyUnavailable as exc:
        print(f"lre-server: {exc}; run move-content again", file=sys.stderr)
        return 1
    except content_move.ContentMismatch as exc:
        print(f"lre-server: {exc}; nothing of it committed", file=sys.stderr)
        return 1
    print(f"move-content done: {done.examined} examined, {done.moved} moved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
