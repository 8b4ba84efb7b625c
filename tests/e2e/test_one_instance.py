"""One instance per port: the processes of a pool share their ports, a second
instance on them (pool or not) stops at once in one line, and so does an
instance whose port another program holds."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lre.signer.devsetup import DevPaths
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import signer_env


def _locked(port: int) -> bool:
    """Whether an instance holds ``port`` (its lock, an abstract Unix socket)."""
    return f"@lre-port-{port}\n" in Path("/proc/net/unix").read_text()


def _refused(command: list[str], env: dict[str, str]) -> str:
    """The one line a refused start prints (exit status 2)."""
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_signer_pool_shares_its_ports_and_a_second_signer_is_refused(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(dev_var, grpc_port, http_port, LRE_SIGNER_PROCESSES="2")
    log = tmp_path / "signer.log"
    with running([str(BIN / "lre-signer"), "serve"], env, log) as pool:
        # Both workers of the pool listen: the lock lets the instance's own processes in.
        assert wait_for(lambda: log.read_text().count('"signer serving"') == 2), log.read_text()
        assert health_status(f"127.0.0.1:{grpc_port}") == SERVING
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as page:
            (build,) = (
                s
                for f in text_string_to_metric_families(page.read().decode())
                if f.name == "lre_build_info"
                for s in f.samples
            )
        assert build.labels["part"] == "lre-signer" and build.value == 1
        for processes in ("2", "1"):
            line = _refused(
                [str(BIN / "lre-signer"), "serve"], {**env, "LRE_SIGNER_PROCESSES": processes}
            )
            assert line == (
                f"lre-signer: grpc_address 127.0.0.1:{grpc_port}: port {grpc_port} is held by "
                f"another LRE instance (pid {pool.pid}); stop it or choose other ports\n"
            )
        # Another listener only on the HTTP port: named too.
        line = _refused(
            [str(BIN / "lre-signer"), "serve"],
            {**env, "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"},
        )
        assert f"http_address 127.0.0.1:{http_port}: port {http_port} is held" in line
        assert pool.poll() is None
        assert health_status(f"127.0.0.1:{grpc_port}") == SERVING

    # Nothing stale once it is gone; a port another program listens on is named.
    assert not _locked(grpc_port)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        line = _refused(
            [str(BIN / "lre-signer"), "serve"],
            signer_env(dev_var, taken, free_port()),
        )
    assert line == (
        f"lre-signer: cannot listen on grpc_address 127.0.0.1:{taken}: "
        "the port is in use by another program\n"
    )


def test_a_second_server_on_the_same_ports_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text(secrets.token_hex(32))
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        "LRE_CONFIG": "",
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "LRE_SERVER_SIGNER_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_PROCESSES": "2",
    }
    server = [str(BIN / "lre-server"), "serve"]
    with running(server, env, tmp_path / "server.log") as pool:
        assert wait_for(lambda: _locked(grpc_port) and _locked(metrics_port), timeout=30), (
            tmp_path / "server.log"
        ).read_text()
        line = _refused(server, env)
        assert line == (
            f"lre-server: grpc_address 127.0.0.1:{grpc_port}: port {grpc_port} is held by "
            f"another LRE instance (pid {pool.pid}); stop it or choose other ports\n"
        )
        # The workers' process, on the same metrics port.
        line = _refused([str(BIN / "lre-server"), "work"], env)
        assert f"metrics_address 127.0.0.1:{metrics_port}: port {metrics_port} is held" in line
        assert pool.poll() is None

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        line = _refused(server, {**env, "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{taken}"})
    assert line == (
        f"lre-server: cannot listen on metrics_address 127.0.0.1:{taken}: "
        "the port is in use by another program\n"
    )
