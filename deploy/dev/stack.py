"""`make run`: start the signer and the server on the development setup under
``--var``, print where they listen, and stop both on Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lre.dev.tls import SERVER_CLIENT, TlsFiles
from lre.runtime.config import load
from lre.runtime.ports import PortTaken, claim
from lre.runtime.tls import channel_credentials
from lre.server.config import ServerSettings
from lre.signer.config import SignerSettings


def _tls_settings(files: TlsFiles) -> dict[str, str]:
    """Mutual TLS on every port with the development CA of ``make run``."""
    service = {
        "TLS_CERT_FILE": str(files.service_cert),
        "TLS_KEY_FILE": str(files.service_key),
        "TLS_CLIENT_CA_FILE": str(files.ca),
    }
    server = files.client_cert(SERVER_CLIENT.split(".")[0])
    return {
        **{f"LRE_SIGNER_{k}": v for k, v in service.items()},
        **{f"LRE_SERVER_{k}": v for k, v in service.items()},
        "LRE_SERVER_SIGNER_TLS_CA_FILE": str(files.ca),
        "LRE_SERVER_SIGNER_TLS_CERT_FILE": str(server),
        "LRE_SERVER_SIGNER_TLS_KEY_FILE": str(server.with_suffix(".key")),
    }


def wait_serving(
    address: str, timeout_s: float, process: subprocess.Popen[bytes], tls: TlsFiles | None
) -> bool:
    deadline = time.monotonic() + timeout_s
    channel = (
        grpc.secure_channel(
            address,
            channel_credentials(tls.ca, tls.client_cert("operator"), tls.client_key("operator")),
        )
        if tls
        else grpc.insecure_channel(address)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and process.poll() is None:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(prog="deploy/dev/stack.py", description=__doc__)
    parser.add_argument("--var", type=Path, default=Path("var"))
    args = parser.parse_args()
    root = args.var.resolve()
    env = {
        **os.environ,
        "LRE_CONFIG": str(root / "lre.toml"),
        "SOFTHSM2_CONF": str(root / "softhsm" / "softhsm2.conf"),
    }
    # A developer's grpcurl lists the methods; production leaves reflection
    # off (the settings' default). LRE_*_REFLECTION=false here turns it off.
    env.setdefault("LRE_SERVER_REFLECTION", "true")
    env.setdefault("LRE_SIGNER_REFLECTION", "true")
    tls = TlsFiles(root / "tls")
    if tls.ca.exists():
        env = {**_tls_settings(tls), **env}  # what the caller set wins
    signer_settings = load(SignerSettings, "signer", env)
    # The server talks to this signer, wherever it was told to listen.
    env.setdefault("LRE_SERVER_SIGNER_ADDRESS", signer_settings.grpc_address)
    server_settings = load(ServerSettings, "server", env)
    # The whole stack's ports, held by this launcher: its processes are its
    # children and go on; a second stack stops here, in one line.
    try:
        _ports = claim(
            {
                **{
                    f"LRE_SIGNER_{k.upper()}": getattr(signer_settings, k)
                    for k in ("grpc_address", "http_address", "health_address")
                },
                **{
                    f"LRE_SERVER_{k.upper()}": getattr(server_settings, k)
                    for k in ("grpc_address", "metrics_address", "health_address")
                },
            }
        )
    except PortTaken as exc:
        print(f"lre: {exc}", file=sys.stderr)
        return 1
    bin_dir = Path(sys.executable).parent
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(_signum: int = 0, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        processes["signer"] = subprocess.Popen([str(bin_dir / "lre-signer"), "serve"], env=env)
        tls_used = tls if signer_settings.tls_cert_file else None
        if not wait_serving(signer_settings.grpc_address, 60, processes["signer"], tls_used):
            print("lre: the signer did not become healthy; see its log above", file=sys.stderr)
            return 1
        processes["server"] = subprocess.Popen([str(bin_dir / "lre-server"), "serve"], env=env)
        if not wait_serving(server_settings.grpc_address, 60, processes["server"], tls_used):
            print("lre: the server did not become healthy; see its log above", file=sys.stderr)
            return 1
        web = "https" if tls_used else "http"
        transport = (
            f"mutual TLS: CA {tls.ca}, client certificates beside it" if tls_used else "plaintext"
        )
        print(
            f"""
LRE is running (Ctrl-C stops both processes)
  server gRPC     {server_settings.grpc_address}   (Identity, Custody, Notification)
  server metrics  {web}://{server_settings.metrics_address}/metrics
  signer gRPC     {signer_settings.grpc_address}   (SigningService)
  signer HTTP     {web}://{signer_settings.http_address}/tsa  (RFC 3161)  and /metrics
  transport       {transport}
  database        {server_settings.database_url}
  state           {root}/
""",
            flush=True,
        )
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"lre: the {name} exited with {process.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.3)
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    sys.exit(main())
