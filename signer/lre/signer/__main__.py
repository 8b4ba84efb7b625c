"""`lre-signer`: serve, and the key ceremony around the token."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkcs11 import ObjectClass

from lre.runtime import jsonlines, pool
from lre.runtime.denylist import DenyList
from lre.runtime.serving import GrpcProcess, ServiceBinding, wait_for_signal
from lre.runtime.tls import https_context
from lre.runtime.version import add_version_option
from lre.signer import checktoken, config, pki
from lre.signer.app import Signer
from lre.signer.devsetup import dev_setup
from lre.signer.errors import SignerError
from lre.signer.http import http_server
from lre.signer.policy import CallerPolicy
from lre.signer.service import SigningServicer
from lre.signer.token import Token
from lre.v1 import signing_pb2, signing_pb2_grpc

log = logging.getLogger("lre.signer")
SERVICE_NAME = signing_pb2.DESCRIPTOR.services_by_name["SigningService"].full_name


def serve_worker(settings: config.SignerSettings) -> int:
    credentials = settings.server_credentials()  # before anything: refuses a bad TLS setup
    signer = Signer(settings)
    policy = CallerPolicy(
        settings.signer_callers, settings.timestamp_callers, tls=credentials is not None
    )
    process = GrpcProcess(
        [
            ServiceBinding(
                SERVICE_NAME,
                signing_pb2_grpc.add_SigningServiceServicer_to_server,
                SigningServicer(signer),
            )
        ],
        settings.grpc_address,
        max_workers=settings.grpc_threads,
        log_rpcs=settings.log_rpcs,
        guard=policy,
        credentials=credentials,
        health_address=settings.health_address or None,
        limits=settings.stream_limits(),
        reflection_enabled=settings.reflection,
        role_of=policy.role_label,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs or None,
        deny=DenyList(settings.denied_callers_file),
    )
    # Connect before taking traffic: with SO_REUSEPORT a worker receives
    # connections as soon as it listens. The process as a whole ("",
    # liveness) serves whatever the token does: restarting the signer does
    # not bring an HSM back, the monitor reconnects by itself.
    process.set_serving(True, "")
    process.set_serving(signer.check_health(), SERVICE_NAME)
    http = http_server(
        signer,
        settings.http_address,
        https_context(settings.tls_cert_file, settings.tls_key_file),
        settings.http_timeout_s,
    )
    signer.start_monitor(lambda healthy: process.set_serving(healthy, SERVICE_NAME))
    process.start()
    http.start()
    log.info(
        "signer serving",
        extra={"grpc_port": process.port, "http_port": http.port, "pid": os.getpid()},
    )
    wait_for_signal()
    log.info("signer stopping")
    process.stop(grace=5)
    http.stop()
    signer.close()
    return 0


def serve_pool(settings: config.SignerSettings, processes: int) -> int:
    if any(
        a.endswith(":0")
        for a in (settings.grpc_address, settings.http_address, settings.health_address)
    ):
        raise SystemExit("several signer processes need fixed ports")
    return pool.serve_pool(
        [sys.executable, "-m", "lre.signer", "serve"], {"LRE_SIGNER_PROCESSES": "1"}, processes
    )


def _token(settings: config.SignerSettings) -> Token:
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

    settings = config.load()
    jsonlines.configure(settings.log_level)
    try:
        if args.command == "serve":
            if problems := settings.production_problems():
                problem = "profile production: " + "; ".join(problems)
                print(f"lre-signer: configuration error: {problem}", file=sys.stderr)
                return 2
            if settings.processes > 1:
                return serve_pool(settings, settings.processes)
            return serve_worker(settings)
        if args.command == "check-token":
            return checktoken.run(settings)
        if args.command == "dev-setup":
            paths = dev_setup(args.var)
            print(
                f"development token, keys and PKI ready under {paths.root}/ (config {paths.config})"
            )
            return 0
        token = _token(settings)
        try:
            if args.command == "create-key":
                if args.kind == "aes-256":
                    token.generate_wrap_key(args.label)
                else:
                    token.generate_ec_key(args.label)
            elif args.command == "csr":
                args.out.write_bytes(
                    x509.load_der_x509_csr(
                        pki.build_csr(token, args.label, args.subject)
                    ).public_bytes(serialization.Encoding.PEM)
                )
            elif args.command == "import-certificate":
                data = args.cert.read_bytes()
                cert = (
                    x509.load_pem_x509_certificate(data)
                    if data.lstrip().startswith(b"-----")
                    else x509.load_der_x509_certificate(data)
                )
                pki.import_certificate(
                    token, args.label, cert.public_bytes(serialization.Encoding.DER)
                )
            elif args.command == "show-key":
                cls = ObjectClass.PRIVATE_KEY
                if not token.has_object(cls, args.label):
                    cls = ObjectClass.SECRET_KEY
                print(token.key_attributes(cls, args.label))
        finally:
            token.close()
    except (SignerError, ValueError, OSError) as exc:
        print(f"lre-signer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
