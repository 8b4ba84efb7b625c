"""`make run` as a new user meets it: both processes up, healthy, reflectable,
and gone after Ctrl-C; a second start reuses the token, PKI and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from lre.dev.tls import TlsFiles
from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.processes import BIN, free_port, wait_for
from tests.support.rpc import SERVING, channel, health_status

STACK = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "stack.py"

LRE_SERVICES = {
    "lre.v1.IdentityService",
    "lre.v1.CustodyService",
    "lre.v1.NotificationService",
    "lre.v1.SigningService",
}


def _processes_using(var: Path) -> list[int]:
    """PIDs whose environment points at this var folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(var).encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _setup(var: Path) -> None:
    subprocess.run(
        [str(BIN / "lre-signer"), "dev-setup", "--var", str(var)], check=True, capture_output=True
    )
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "LRE_CONFIG": str(var / "lre.toml")},
    )


@pytest.fixture
def ports() -> dict[str, str]:
    return {
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
    }


def _finished(process: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _run_devstack(var: Path, ports: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("LRE_CONFIG", "SOFTHSM2_CONF")}
    return subprocess.Popen(
        [sys.executable, str(STACK), "--var", str(var)],
        env={**env, **ports},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_make_run_serves_every_service_and_stops_cleanly(
    tmp_path: Path, ports: dict[str, str]
) -> None:
    var = tmp_path / "var"
    _setup(var)
    _setup(var)  # a second `make run` reuses what the first created
    tls = TlsFiles(var / "tls")
    log = tmp_path / "devstack.log"
    devstack = _run_devstack(var, ports, log)
    try:
        assert wait_for(lambda: b"LRE is running" in log.read_bytes(), timeout=60), log.read_text()
        server, signer = ports["LRE_SERVER_GRPC_ADDRESS"], ports["LRE_SIGNER_GRPC_ADDRESS"]
        for service in (
            "",
            "lre.v1.IdentityService",
            "lre.v1.CustodyService",
            "lre.v1.NotificationService",
        ):
            assert health_status(server, service, tls=tls, caller="auditor") == SERVING
        for service in ("", "lre.v1.SigningService"):
            assert health_status(signer, service, tls=tls, caller="server") == SERVING
        # make run speaks mutual TLS only, with the CA it made under var/tls.
        assert health_status(server) is None and health_status(signer) is None
        assert health_status(server, tls=tls) is None  # no client certificate

        listed = set()
        for address in (server, signer):
            with channel(address, tls, "operator") as conn:
                listed |= set(ProtoReflectionDescriptorDatabase(conn).get_services())
        assert listed >= LRE_SERVICES
        assert "grpc.health.v1.Health" in listed

        with channel(server, tls, "recipient-portal") as portal:
            # The portal's certificate is let through, and the server answers.
            with pytest.raises(grpc.RpcError) as raised:
                identity_pb2_grpc.IdentityServiceStub(portal).SendEmailCode(
                    identity_pb2.SendEmailCodeRequest(party="parties/1"), timeout=5
                )
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        children = _processes_using(var)
        assert len(children) >= 2
        # A second `make run` on the same ports stops at once, in one line,
        # rather than report "running" because the first stack answered.
        second = subprocess.run(
            [sys.executable, str(STACK), "--var", str(var)],
            env={**os.environ, **ports},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert "LRE is running" not in second.stdout
        assert second.stderr.splitlines() == [
            f"lre: LRE_SIGNER_GRPC_ADDRESS {ports['LRE_SIGNER_GRPC_ADDRESS']}: port "
            f"{ports['LRE_SIGNER_GRPC_ADDRESS'].rsplit(':', 1)[1]} is held by another LRE "
            f"instance (pid {devstack.pid}); stop it or choose other ports"
        ]
        assert devstack.poll() is None
    finally:
        devstack.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert devstack.wait(timeout=30) == 0, log.read_text()
    assert wait_for(lambda: not _processes_using(var), timeout=10), _processes_using(var)
    assert "server stopping" in log.read_text() and "signer stopping" in log.read_text()

    # Second start on the same state: same token, PKI and database.
    pki_before = (var / "pki" / "seal.pem").read_bytes()
    devstack = _run_devstack(var, ports, tmp_path / "again.log")
    try:
        assert wait_for(
            lambda: b"LRE is running" in (tmp_path / "again.log").read_bytes(), timeout=60
        )
    finally:
        devstack.send_signal(signal.SIGINT)
        assert devstack.wait(timeout=30) == 0
    assert (var / "pki" / "seal.pem").read_bytes() == pki_before
    assert wait_for(lambda: not _processes_using(var), timeout=10), _processes_using(var)


def test_the_walkthrough_client_against_make_run(tmp_path: Path, ports: dict[str, str]) -> None:
    var = tmp_path / "var"
    _setup(var)
    log = tmp_path / "devstack.log"
    devstack = _run_devstack(var, ports, log)
    document = tmp_path / "resiliation-bail.pdf"
    document.write_bytes(b"%PDF-1.7 " + bytes(range(256)) * 400)
    try:
        assert wait_for(lambda: b"LRE is running" in log.read_bytes(), timeout=60), log.read_text()
        # Both at once, as two users of one stack (each waits on the outbox).
        clients = [
            subprocess.Popen(
                [
                    str(BIN / "lre-client"),
                    command,
                    str(document),
                    "--server",
                    ports["LRE_SERVER_GRPC_ADDRESS"],
                    "--signer",
                    ports["LRE_SIGNER_GRPC_ADDRESS"],
                    "--maildir",
                    str(var / "mail"),
                    "--out",
                    str(tmp_path / out),
                    "--tls-dir",
                    str(var / "tls"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command, out in (("walkthrough", "out"), ("mailing", "mailing"))
        ]
        result, mailing = (_finished(client, timeout=120) for client in clients)
    finally:
        devstack.send_signal(signal.SIGINT)
        devstack.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "genuine: True" in result.stdout and "content identical: True" in result.stdout
    assert (tmp_path / "out" / document.name).read_bytes() == document.read_bytes()
    commands = [
        line.strip().split()
        for line in result.stdout.splitlines()
        if line.strip() and Path(line.split()[0]).name in ("openssl", "pdfsig", "lre-verify")
    ]
    # Four evidences (deposit, notification, acceptance, handover), four commands each;
    # the printed commands run as printed (lre-verify named by its path: no PATH needed).
    assert sorted(Path(c[0]).name for c in commands) == (
        ["lre-verify"] * 4 + ["openssl"] * 8 + ["pdfsig"] * 4
    )
    for command in commands:
        program = command[0]
        command[0] = Path(program).name
        verified = subprocess.run([program, *command[1:]], capture_output=True, text=True)
        assert verified.returncode == 0, (command, verified.stdout, verified.stderr)
        said = {
            "openssl": ("Verification successful", "Verification: OK"),
            "pdfsig": ("Signature Validation: Signature is Valid.",),
            "lre-verify": ("\nVALID\n",),
        }[command[0]]
        output = verified.stdout + verified.stderr
        assert any(s in output for s in said), (command, output)
        if command[0] == "pdfsig":  # signed as a whole: nothing follows the signature
            assert "  - Total document signed" in output, (command, output)
        if command[0] == "lre-verify":  # and a bundle with one byte changed is not
            changed = tmp_path / "changed.zip"
            data = bytearray(Path(command[1]).read_bytes())
            data[len(data) // 3] ^= 0x01
            changed.write_bytes(bytes(data))
            refused = subprocess.run([program, str(changed), *command[2:]], capture_output=True)
            assert refused.returncode == 1, (command, refused.stdout)
    # The mailing command: two letters, two refusals (no consent, no such party), one accepted.
    assert mailing.returncode == 0, mailing.stdout + mailing.stderr
    assert "2 letters, 2 refused" in mailing.stdout, mailing.stdout
    assert "content identical: True" in mailing.stdout
    assert "accepted 1" in mailing.stdout
    report = (tmp_path / "mailing" / "mailing-report.csv").read_text().splitlines()
    assert len(report) == 5 and report[1].split(",")[4] == "accepted"
