"""`lre-signer`: serve, and the key ceremony around the token."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lre.runtime import jsonlines, tracing
from lre.runtime.config import ConfigError
from lre.runtime.ports import PortTaken, claim
from lre.runtime.version import add_version_option
from lre.signer import config
from lre.signer.errors import SignerError

if TYPE_CHECKING:
    from lre.signer.token import Token

# The token, PKCS#11 and serving modules are imported by the command that
# needs them: a start refused (its ports held, a bad profile) answers at once
# instead of after seconds of imports.


def _token(settings: config.SignerSettings) -> Token:
    from lre.signer.token import Token

    token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
    token.connect()
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lre-signer", description=__doc__)
    add_version_option(parser, "lre-signer")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve gRPC and HTTP (RFC 3161, /metrics)")
    dev = commands.add_parser("dev-setup", help="development token, keys, local CA and config")
    dev.add_argument("--var", type=Path, default=Path("var"))
    create = commands.add_parser("create-key", help="generate a non-extractable key on the token")
    create.add_argument("--label", required=True)
    create.add_argument("--kind", choices=["ec-p256", "aes-256"], default="ec-p256")
    csr = commands.add_parser("csr", help="PKCS#10 request for a token key, signed on the token")
    csr.add_argument("--label", required=True)
    csr.add_argument("--subject", required=True, help="RFC 4514, e.g. 'CN=Seal,O=Provider,C=FR'")
    csr.add_argument("--out", type=Path, required=True)
    imp = commands.add_parser(
        "import-certificate", help="store the CA-issued certificate beside its key"
    )
    imp.add_argument("--label", required=True)
    imp.add_argument("--cert", type=Path, required=True, help="PEM or DER")
    commands.add_parser(
        "check-token",
        help="check the module, token, PIN, mechanisms, keys and certificates; exit 1 on a failure",
    )
    show = commands.add_parser("show-key", help="print a key's protection attributes")
    show.add_argument("--label", required=True)
    args = parser.parse_args(argv)

    try:
        settings = config.load()
    except (ConfigError, OSError, ValueError) as exc:
        print(f"lre-signer: configuration error: {exc}", file=sys.stderr)
        return 2
    jsonlines.configure(settings.log_level)
    try:
        if args.command == "serve":
            if problems := settings.production_problems():
                problem = "profile production: " + "; ".join(problems)
                print(f"lre-signer: configuration error: {problem}", file=sys.stderr)
                return 2
            try:
                # Held until the process exits; the processes of a pool are its children.
                _ports = claim(
                    {
                        "grpc_address": settings.grpc_address,
                        "http_address": settings.http_address,
                        "health_address": settings.health_address,
                        "metrics_address": settings.metrics_address,
                    }
                )
            except PortTaken as exc:
                print(f"lre-signer: {exc}", file=sys.stderr)
                return 2
            jsonlines.capture_native_stderr()
            try:
                tracing.configure(
                    "lre-signer", settings.tracing_endpoint, "LRE_SIGNER_TRACING_ENDPOINT"
                )
            except ConfigError as exc:
                print(f"lre-signer: configuration error: {exc}", file=sys.stderr)
                return 2
            from lre.signer import serve

            if settings.processes > 1:
                return serve.serve_pool(settings, settings.processes)
            return serve.serve_worker(settings)
        if args.command == "check-token":
            from lre.signer import checktoken

            return checktoken.run(settings)
        if args.command == "dev-setup":
            from lre.signer.devsetup import dev_setup

            paths = dev_setup(args.var)
            print(
                f"development token, keys and PKI ready under {paths.root}/ (config {paths.config})"
            )
            return 0
        return _ceremony(args, settings)
    except (SignerError, ValueError, OSError) as exc:
        print(f"lre-signer: {exc}", file=sys.stderr)
        return 1


def _ceremony(args: argparse.Namespace, settings: config.SignerSettings) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from pkcs11 import ObjectClass

    from lre.signer import pki

    token = _token(settings)
    try:
        if args.command == "create-key":
            if args.kind == "aes-256":
                token.generate_wrap_key(args.label)
            else:
                token.generate_ec_key(args.label)
        elif args.command == "csr":
            try:
                x509.Name.from_rfc4514_string(args.subject)
            except ValueError:
                raise ValueError(
                    f"--subject {args.subject!r} is not an RFC 4514 name"
                    " (e.g. 'CN=Seal,O=Provider,C=FR')"
                ) from None
            args.out.write_bytes(
                x509.load_der_x509_csr(pki.build_csr(token, args.label, args.subject)).public_bytes(
                    serialization.Encoding.PEM
                )
            )
        elif args.command == "import-certificate":
            data = args.cert.read_bytes()
            try:
                cert = (
                    x509.load_pem_x509_certificate(data)
                    if data.lstrip().startswith(b"-----")
                    else x509.load_der_x509_certificate(data)
                )
            except ValueError:
                raise ValueError(f"{args.cert}: not a PEM or DER certificate") from None
            pki.import_certificate(token, args.label, cert.public_bytes(serialization.Encoding.DER))
        elif args.command == "show-key":
            cls = ObjectClass.PRIVATE_KEY
            if not token.has_object(cls, args.label):
                cls = ObjectClass.SECRET_KEY
            print(token.key_attributes(cls, args.label))
    finally:
        token.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
