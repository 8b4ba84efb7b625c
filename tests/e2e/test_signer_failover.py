"""The server's signer client over a target naming two real signers: calls go
round-robin to both, and go on without an error when one is killed."""

from __future__ import annotations

import re
import signal
import threading
import urllib.request
import uuid
from pathlib import Path

from lre.server.adapters.signer import SignerClient, letter_key_context
from lre.signer.devsetup import DevPaths
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import signer_env

SIGNING = "lre.v1.SigningService"


def wrap_calls(metrics_url: str) -> float:
    """WrapKey and UnwrapKey calls the signer answered OK."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    found = re.findall(
        r'grpc_server_handled_total\{[^}]*grpc_method="(?:Un)?[wW]rapKey"[^}]*\} (\S+)',
        "\n".join(line for line in text.splitlines() if 'grpc_code="OK"' in line),
    )
    return sum(float(v) for v in found)


def test_round_robin_over_two_signers_and_failover(dev_var: DevPaths, tmp_path: Path) -> None:
    ports = [(free_port(), free_port()) for _ in range(2)]
    signers = [
        running(
            [str(BIN / "lre-signer"), "serve"],
            signer_env(dev_var, grpc_port, http_port),
            tmp_path / f"signer-{n}.log",
        )
        for n, (grpc_port, http_port) in enumerate(ports)
    ]
    with signers[0] as first, signers[1]:
        for grpc_port, _ in ports:
            assert wait_for(lambda p=grpc_port: health_status(f"127.0.0.1:{p}", SIGNING) == SERVING)
        target = "ipv4:" + ",".join(f"127.0.0.1:{g}" for g, _ in ports)
        client = SignerClient(target, connections=1)
        key, context = b"k" * 32, letter_key_context(uuid.uuid4())
        metrics = [f"http://127.0.0.1:{h}/metrics" for _, h in ports]

        def both_connected() -> bool:
            client.wrap_key(key, context)
            return min(wrap_calls(m) for m in metrics) >= 1

        assert wait_for(both_connected, timeout=20)  # calls start on the first one ready
        before = [wrap_calls(m) for m in metrics]
        for _ in range(40):
            assert client.unwrap_key(client.wrap_key(key, context), context) == key
        shares = [wrap_calls(m) - b for m, b in zip(metrics, before, strict=True)]
        assert min(shares) >= 30, shares  # round-robin: both take about half of 80

        # SIGKILL one while calls are flowing from several threads.
        errors: list[BaseException] = []
        stop = threading.Event()

        def caller() -> None:
            while not stop.is_set():
                try:
                    assert client.unwrap_key(client.wrap_key(key, context), context) == key
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=caller) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: False, timeout=0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        wait_for(lambda: False, timeout=1.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        before_last = wrap_calls(metrics[1])
        for _ in range(20):
            client.wrap_key(key, context)
        assert wrap_calls(metrics[1]) >= before_last + 20
        assert client.serving()
        client.close()
