"""The production profile: the shipped production configuration starts as it
is, and the same configuration with one development default left in is
refused at start, naming the setting."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lre.dev.tls import create_dev_tls
from lre.runtime import config
from lre.server.config import ServerSettings
from lre.signer.config import SignerSettings
from tests.support.processes import BIN

ROOT = Path(__file__).resolve().parents[2]
# The kit's settings, which kustomize makes the lre-config ConfigMap of.
KIT = ROOT / "deploy" / "kubernetes" / "base" / "lre.toml"


def _kit_toml() -> str:
    return KIT.read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lre.toml"
    path.write_text(text)
    return path


def _settings(tmp_path: Path, text: str) -> tuple[ServerSettings, SignerSettings]:
    env = {"LRE_CONFIG": str(_write(tmp_path, text))}
    return (
        config.load(ServerSettings, "server", env),
        config.load(SignerSettings, "signer", env),
    )


def _without(text: str, setting: str, section: str) -> str:
    """The kit's TOML with ``setting`` of ``[section]`` removed (a multi-line
    string value with it)."""
    lines, current, skipping, removed = [], "", False, False
    for line in text.splitlines():
        if skipping:
            skipping = not line.rstrip().endswith('"""')
            continue
        if line.startswith("["):
            current = line.strip("[] ")
        if current == section and line.split("=")[0].strip() == setting:
            removed = True
            skipping = line.rstrip().endswith('"""\\')
            continue
        lines.append(line)
    assert removed, f"{setting} not in [{section}]"
    return "\n".join(lines) + "\n"


def test_the_shipped_production_configuration_has_no_development_default(tmp_path: Path) -> None:
    server, signer = _settings(tmp_path, _kit_toml())
    assert server.profile == signer.profile == "production"
    assert server.production_problems() == []
    assert signer.production_problems() == []


@pytest.mark.parametrize(
    ("section", "setting"),
    [
        ("server", "provider_name"),
        ("server", "mail_from"),
        ("server", "recipient_portal_url"),
        ("server", "caller_roles"),
        ("server", "evidence_policy_oid"),
        ("server", "require_tls"),
        ("server", "mail_transport"),
        ("server", "tree_head_export"),
        ("server", "provider_certificates_file"),
        ("signer", "clock_references"),
        ("signer", "clock_journal_file"),
        ("signer", "signer_callers"),
        ("signer", "require_tls"),
    ],
)
def test_each_development_default_left_in_is_named(
    tmp_path: Path, section: str, setting: str
) -> None:
    server, signer = _settings(tmp_path, _without(_kit_toml(), setting, section))
    problems = (server if section == "server" else signer).production_problems()
    prefix = f"LRE_{section.upper()}_{setting.upper()}: "
    assert [p for p in problems if p.startswith(prefix)], problems


def test_sqlite_and_the_development_ca_are_refused(tmp_path: Path) -> None:
    tls = create_dev_tls(tmp_path / "tls")
    text = _kit_toml().replace(
        'tls_client_ca_file = "/etc/lre/tls/ca.crt"', f'tls_client_ca_file = "{tls.ca}"'
    )
    env = {"LRE_CONFIG": str(_write(tmp_path, text)), "LRE_SERVER_DATABASE_URL": "sqlite:///x.db"}
    problems = config.load(ServerSettings, "server", env).production_problems()
    assert any(p.startswith("LRE_SERVER_DATABASE_URL: ") for p in problems), problems
    assert "LRE_SERVER_TLS_CLIENT_CA_FILE: names the development CA" in problems
    # The development profile (make run) keeps every default.
    assert ServerSettings().production_problems() == []
    assert SignerSettings().production_problems() == []


@pytest.mark.parametrize(("program", "section", "setting"), [
    ("lre-server", "server", "provider_name"),
    ("lre-signer", "signer", "clock_references"),
])  # fmt: skip
def test_a_process_with_one_default_left_refuses_to_start(
    tmp_path: Path, program: str, section: str, setting: str
) -> None:
    path = _write(tmp_path, _without(_kit_toml(), setting, section))
    env = {**os.environ, "LRE_CONFIG": str(path)}
    result = subprocess.run(
        [str(BIN / program), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{program}: configuration error: profile production: "), line
    assert f"LRE_{section.upper()}_{setting.upper()}: " in line, line
    assert "Traceback" not in result.stderr


def test_the_systemd_example_has_no_development_default(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    (block,) = [b.split("\n", 1)[1] for b in text.split("```toml")[1:] if 'profile = "' in b]
    server, signer = _settings(tmp_path, block.split("```")[0])
    assert server.production_problems() == [] and signer.production_problems() == []
