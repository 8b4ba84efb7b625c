"""`lre-client`: the walkthroughs against a running service (`make run`) and
the health probe."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc

from lre.client import health, mailing, walkthrough
from lre.client.channels import connect
from lre.client.mailing import MailingWalkthrough
from lre.client.walkthrough import Walkthrough

# `make run` without TLS files (plaintext); with an explicit --tls-dir, its
# certificates or an error, never plaintext.
DEFAULT_TLS_DIR = Path("var/tls")


def address_of(env: Mapping[str, str], variable: str, default: str) -> str:
    """Where to reach the service `make run` started with ``variable`` (as
    the README moves its ports): its listening address, a wildcard host
    read as this machine."""
    address = env.get(variable, "").strip() or default
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 (a listening address read, not bound)
        host = "127.0.0.1"
    return f"{host}:{port}"


def tls_dir_of(given: Path | None) -> Path | None:
    """The TLS directory: the one given, which must hold the certificates,
    else `make run`'s if it made one, else none (plaintext)."""
    if given is not None:
        if not (given / "ca.pem").is_file():
            raise SystemExit(f"lre-client: --tls-dir {given}: no ca.pem there")
        return given
    return DEFAULT_TLS_DIR if (DEFAULT_TLS_DIR / "ca.pem").is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lre-client",
        description=f"{walkthrough.__doc__}\n{mailing.__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # --tls would otherwise be taken for --tls-dir, and so on: options
        # are spelt out.
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, kind, text in (
        ("walkthrough", Walkthrough, "a letter's whole life against `make run`"),
        ("mailing", MailingWalkthrough, "one document to several recipients against `make run`"),
    ):
        walk = commands.add_parser(command, help=text, allow_abbrev=False)
        walk.set_defaults(kind=kind)
        walk.add_argument("document", type=Path)
        walk.add_argument(
            "--server",
            default=address_of(os.environ, "LRE_SERVER_GRPC_ADDRESS", "127.0.0.1:50051"),
            help="the server's gRPC address (default: LRE_SERVER_GRPC_ADDRESS, or 127.0.0.1:50051)",
        )
        walk.add_argument(
            "--signer",
            default=address_of(os.environ, "LRE_SIGNER_GRPC_ADDRESS", "127.0.0.1:50052"),
            help="the signer's gRPC address (default: LRE_SIGNER_GRPC_ADDRESS, or 127.0.0.1:50052)",
        )
        walk.add_argument("--maildir", type=Path, default=Path("var/mail"))
        walk.add_argument("--out", type=Path, default=Path(f"var/{command}"))
        walk.add_argument(
            "--tls-dir",
            type=Path,
            default=None,
            help="mutual TLS with the certificates `make run` made here (an error if they"
            " are not there); default var/tls if it exists, else plaintext",
        )
    probe = commands.add_parser(
        "health",
        help="exit 0 if the service is SERVING (an exec probe over mutual TLS)",
        allow_abbrev=False,
    )
    health.add_arguments(probe)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health.run(args)
    tls_dir = tls_dir_of(args.tls_dir)
    if not args.document.is_file():
        # Before any party is registered: nothing is left half done.
        print(f"lre-client: {args.document}: no such file", file=sys.stderr)
        return 2
    with connect(args.server, args.signer, tls_dir) as connections:
        try:
            args.kind(connections, args.maildir, args.out).run(args.document)
        except grpc.RpcError as exc:
            print(f"lre-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
