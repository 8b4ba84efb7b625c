"""The documentation site builds strictly, and the runbook answers every alert."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support import contract
from tests.support.processes import BIN

OPERATIONS = contract.ROOT / "docs" / "operations.md"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=contract.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Two commands" in home, "the README is the home page"
    assert (tmp_path / "site" / "operations" / "index.html").exists()


def test_the_runbook_has_one_entry_per_alert() -> None:
    rules = yaml.safe_load((contract.DEPLOY / "prometheus" / "lre-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    text = OPERATIONS.read_text()
    runbook = text[text.index("## Alerts runbook") :]
    entries = set(re.findall(r"^### (\S+)$", runbook, re.MULTILINE))
    assert alerts, "no alerts found"
    assert entries == alerts, f"missing {alerts - entries}, unknown {entries - alerts}"


def test_operations_covers_what_an_sre_needs() -> None:
    headings = set(re.findall(r"^## (.+)$", OPERATIONS.read_text(), re.MULTILINE))
    assert {
        "Backup and point-in-time restore",
        "Disaster recovery",
        "Upgrades",
        "Capacity",
        "Alerts runbook",
        "Building the image on the reference machine",
    } <= headings
