"""The verify-log CronJob's command as Kubernetes runs it: every mount
read-only (readOnlyRootFilesystem), the shipped emptyDir on /tmp, the
exported tree heads mounted read-only where --against reads them. Run in a
mount namespace of its own (unshare), so nothing outside the test changes;
the configuration and the trust anchors are the test's (bound where the
command finds them through LRE_CONFIG)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lre.server.services.events import EventLog
from tests.support.contract import DEPLOY
from tests.support.processes import BIN, free_port
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import World

STAGE = "/var/lib/lre-test"  # a tmpfs of the namespace: where the test's files are bound


def _container() -> tuple[list[str], dict[str, str], dict[str, dict[str, object]]]:
    """The CronJob's command, environment and volume mounts (by mount path)."""
    shipped = DEPLOY / "kubernetes" / "base" / "verify-log-cronjob.yaml"
    (job,) = yaml.safe_load_all(shipped.read_text())
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mounts = {m["mountPath"]: {**m, **volumes[m["name"]]} for m in container["volumeMounts"]}
    return container["command"], env, mounts


def _read_only(mount: dict[str, object]) -> bool:
    claim = mount.get("persistentVolumeClaim")
    return bool(mount.get("readOnly")) and isinstance(claim, dict) and bool(claim.get("readOnly"))


def _run_read_only(
    command: list[str], env: dict[str, str], binds: dict[str, Path], empty: list[str]
) -> subprocess.CompletedProcess[str]:
    """``command`` with every mount read-only, ``binds`` (target: source)
    bound read-only, and a tmpfs on each of ``empty``."""
    script = ["set -e", "mount --make-rprivate /", f"mount -t tmpfs tmpfs {os.path.dirname(STAGE)}"]
    # A checkout under a path that becomes an empty tmpfs (a clone in /tmp)
    # would lose its programs: kept aside, bound back after.
    checkout = str(BIN.parent.parent)
    hidden = [p for p in empty if checkout.startswith(p.rstrip("/") + "/")]
    saved = f"{os.path.dirname(STAGE)}/checkout"
    if hidden:
        script += [f"mkdir -p {saved}", f"mount --bind {shlex.quote(checkout)} {saved}"]
    for target, source in binds.items():
        script += [
            f"mkdir -p {shlex.quote(target)}",
            f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}",
        ]
    # Every mount read-only, the root first (its list from the kernel).
    script.append(
        "awk '{print $2}' /proc/self/mounts | while read -r m; do "
        'mount -o remount,bind,ro "$m" 2>/dev/null || true; done'
    )
    script.append("! touch /probe-rw 2>/dev/null && ! touch /tmp/probe-rw 2>/dev/null")
    # The database is a network service in the pod; here an SQLite file
    # (which reads need to lock), left writable.
    script.append(f"mount -o remount,bind,rw {shlex.quote(f'{STAGE}/db')}")
    script += [f"mount -t tmpfs -o size=64m tmpfs {shlex.quote(path)}" for path in empty]
    if hidden:
        script += [
            f"mkdir -p {shlex.quote(checkout)}",
            f"mount --bind {saved} {shlex.quote(checkout)}",
            f"mount -o remount,bind,ro {shlex.quote(checkout)}",
        ]
    script.append("exec " + shlex.join(command))
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", "\n".join(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cronjob_verifies_the_log_against_the_heads_under_a_read_only_root(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("unshare and root are required under CI (a mount namespace)")
        pytest.skip("needs unshare and root (a mount namespace)")
    exported = tmp_path / "heads"
    (tmp_path / "db").mkdir()
    world = World(f"sqlite:///{tmp_path / 'db' / 'lre.db'}", signer_process, Clock(), free_port())
    try:
        events = EventLog(world.stores, world.clock, world.signer, "Test provider", exported)
        for _ in range(2):
            world.deposit()
            world.clock.advance(seconds=1)
            events.sequence()
            assert events.seal_head() is not None
    finally:
        world.close()

    command, env, mounts = _container()
    heads = next(path for path, m in mounts.items() if m["name"] == "tree-heads")
    assert _read_only(mounts[heads]) and command[-2:] == ["--against", heads]
    empty = [path for path, m in mounts.items() if "emptyDir" in m]
    assert env.get("TMPDIR") in empty
    pki = signer_process.paths.pki
    config = tmp_path / "config"
    config.mkdir()
    (config / "lre.toml").write_text(
        "[server]\n"
        f'database_url = "sqlite:///{STAGE}/db/lre.db"\n'
        f'seal_trust_anchors_file = "{STAGE}/pki/root-ca.pem"\n'
        f'provider_certificates_file = "{STAGE}/pki/provider-certificates.pem"\n'
    )
    binds = {
        heads: exported,
        f"{STAGE}/db": tmp_path / "db",
        f"{STAGE}/pki": pki,
        f"{STAGE}/config": config,
    }
    # The test's database and configuration instead of the cluster's.
    env = {k: v for k, v in env.items() if k != "LRE_SERVER_DATABASE_URL"}
    env |= {"LRE_CONFIG": f"{STAGE}/config/lre.toml", "PATH": f"{BIN}:{os.environ['PATH']}"}

    # Without the emptyDir, as shipped before: no temporary directory.
    failed = _run_read_only(command, env, binds, [])
    assert failed.returncode != 0
    assert "No usable temporary directory" in failed.stderr, failed.stdout + failed.stderr

    done = _run_read_only(command, env, binds, empty)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "log verified" in done.stdout and "2 published heads" in done.stdout, done.stdout
