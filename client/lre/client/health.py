"""`lre-client health`: one grpc.health.v1 check, as an exec probe.

Kubernetes' own gRPC probes and grpc_health_probe-like tools without a client
certificate cannot reach a port that demands mutual TLS; this one presents
the pod's own certificate. Exit 0 when the service is SERVING, 1 otherwise
(NOT_SERVING, unknown service, unreachable, TLS refused), with one line on
stderr saying which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", help="host:port of the gRPC port (or the health-only port)")
    parser.add_argument("--service", default="", help='the service to ask for ("": the process)')
    parser.add_argument(
        "--ca-file", type=Path, help="CA bundle the server's certificate must chain to"
    )
    parser.add_argument("--cert-file", type=Path, help="client certificate (mutual TLS)")
    parser.add_argument("--key-file", type=Path, help="its private key")
    parser.add_argument("--server-name", help="the name expected in the server's certificate")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.ca_file is None:
        if args.cert_file or args.key_file:
            raise ValueError("--cert-file and --key-file need --ca-file")
        return grpc.insecure_channel(args.address)
    if (args.cert_file is None) != (args.key_file is None):
        raise ValueError("--cert-file and --key-file go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.ca_file.read_bytes(),
        private_key=args.key_file.read_bytes() if args.key_file else None,
        certificate_chain=args.cert_file.read_bytes() if args.cert_file else None,
    )
    options = []
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.address, credentials, options=options)


def run(args: argparse.Namespace) -> int:
    try:
        channel = _channel(args)
    except (OSError, ValueError) as exc:
        print(f"lre-client health: {exc}", file=sys.stderr)
        return 1
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"lre-client health: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"lre-client health: {args.service or '(process)'} {status}", file=sys.stderr)
        return 1
    return 0
