"""`systemd-analyze verify` on the units, with the programs where the units
expect them (/opt/lre/bin is this virtualenv's bin here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import contract
from tests.support.processes import BIN

UNITS = sorted((contract.DEPLOY / "systemd").glob("lre-*.*"))


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is required under CI (deploy/dev/system-deps.sh)")
        pytest.skip("systemd-analyze not installed (apt-get install systemd); not run")
    return found


def test_units_are_shipped() -> None:
    names = {u.name for u in UNITS}
    assert {
        "lre-signer.service",
        "lre-server.service",
        "lre-workers.service",
        "lre-migrate.service",
        "lre-verify-log.service",
        "lre-verify-log.timer",
    } <= names


def test_units_verify(systemd_analyze: str, tmp_path: Path) -> None:
    for unit in UNITS:
        text = unit.read_text().replace("/opt/lre/bin/", f"{BIN}/")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [systemd_analyze, "verify", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    # Unknown or misspelt directives are warnings with exit status 0: any
    # output at all fails the test.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def _directives(unit: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in unit.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def test_units_name_only_commands_and_settings_the_code_has() -> None:
    for unit in UNITS:
        for command in _directives(unit, "ExecStart"):
            argv = command.split()
            argv[0] = Path(argv[0]).name
            assert contract.unknown_command(argv) is None, (unit.name, command)
        names = {e.split("=", 1)[0] for e in _directives(unit, "Environment")}
        assert not contract.unknown_env(names), (unit.name, contract.unknown_env(names))


def test_services_are_hardened_and_take_secrets_as_credentials() -> None:
    for unit in UNITS:
        if unit.suffix != ".service":
            continue
        text = unit.read_text()
        for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
            assert f"\n{directive}\n" in text, (unit.name, directive)
        assert "\nUser=" in text, unit.name
        # No secret on the command line or in the environment.
        assert "PIN" not in " ".join(_directives(unit, "Environment")), unit.name
    assert _directives(contract.DEPLOY / "systemd" / "lre-signer.service", "LoadCredential")
