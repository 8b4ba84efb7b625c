"""`lre-client`: the walkthroughs against a running service (`make run`) and
the health probe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from lre.client import health, mailing, walkthrough
from lre.client.channels import connect
from lre.client.mailing import MailingWalkthrough
from lre.client.walkthrough import Walkthrough


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lre-client",
        description=f"{walkthrough.__doc__}\n{mailing.__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, kind, text in (
        ("walkthrough", Walkthrough, "a letter's whole life against `make run`"),
        ("mailing", MailingWalkthrough, "one document to several recipients against `make run`"),
    ):
        walk = commands.add_parser(command, help=text)
        walk.set_defaults(kind=kind)
        walk.add_argument("document", type=Path)
        walk.add_argument("--server", default="127.0.0.1:50051")
        walk.add_argument("--signer", default="127.0.0.1:50052")
        walk.add_argument("--maildir", type=Path, default=Path("var/mail"))
        walk.add_argument("--out", type=Path, default=Path(f"var/{command}"))
        walk.add_argument(
            "--tls-dir",
            type=Path,
            default=Path("var/tls"),
            help="mutual TLS with the certificates `make run` made here (plaintext if absent)",
        )
    probe = commands.add_parser(
        "health", help="exit 0 if the service is SERVING (an exec probe over mutual TLS)"
    )
    health.add_arguments(probe)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health.run(args)
    tls_dir = args.tls_dir if (args.tls_dir / "ca.pem").exists() else None
    with connect(args.server, args.signer, tls_dir) as connections:
        try:
            args.kind(connections, args.maildir, args.out).run(args.document)
        except grpc.RpcError as exc:
            print(f"lre-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
