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

from lre.config import load
from server.config import ServerSettings
from signer.config import SignerSettings


def wait_serving(address: str, timeout_s: float, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
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
    parser = argparse.ArgumentParser(prog="python -m lre.devstack", description=__doc__)
    parser.add_argument("--var", type=Path, default=Path("var"))
    args = parser.parse_args()
    root = args.var.resolve()
    env = {
        **os.environ,
        "LRE_CONFIG": str(root / "lre.toml"),
        "SOFTHSM2_CONF": str(root / "softhsm" / "softhsm2.conf"),
    }
    signer_settings = load(SignerSettings, "signer", env)
    # The server talks to this signer, wherever it was told to listen.
    env.setdefault("LRE_SERVER_SIGNER_ADDRESS", signer_settings.grpc_address)
    server_settings = load(ServerSettings, "server", env)
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
        if not wait_serving(signer_settings.grpc_address, 60, processes["signer"]):
            print("lre: the signer did not become healthy; see its log above", file=sys.stderr)
            return 1
        processes["server"] = subprocess.Popen([str(bin_dir / "lre-server"), "serve"], env=env)
        if not wait_serving(server_settings.grpc_address, 60, processes["server"]):
            print("lre: the server did not become healthy; see its log above", file=sys.stderr)
            return 1
        print(
            f"""
LRE is running (Ctrl-C stops both processes)
  server gRPC     {server_settings.grpc_address}   (Identity, Custody, Notification)
  server metrics  http://{server_settings.metrics_address}/metrics
  signer gRPC     {signer_settings.grpc_address}   (SigningService)
  signer HTTP     http://{signer_settings.http_address}/tsa  (RFC 3161)  and /metrics
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
