"""The documentation site builds strictly, the README stays a newcomer's
page, the runbook answers every alert, and the product speaks without its
tracker's history."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support import contract
from tests.support.processes import BIN

OPERATIONS = contract.ROOT / "docs" / "operations.md"
README = contract.ROOT / "README.md"
# Where the product's text is: code, docs, deployment files, tests, benchmarks.
PRODUCT = ("common", "server", "signer", "client", "tests", "deploy", "bench", "docs", "protos")


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
    for page in sorted((contract.ROOT / "docs").glob("*.md")):
        assert (tmp_path / "site" / page.stem / "index.html").exists(), page.name


def test_the_readme_is_read_in_one_sitting() -> None:
    """What it is, the two commands, the walkthrough, what runs where, links:
    everything else belongs to a page of docs/."""
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "move detail to docs/ and link it"
    for heading in ("## Two commands", "## What runs, and where", "## Documentation"):
        assert heading in text
    for page in sorted((contract.ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in text, f"the README links no {page.name}"


def test_no_issue_numbers_in_the_product() -> None:
    """Comments and docs say why, not which ticket asked: the tracker's
    numbers mean nothing to the next reader."""
    found = []
    files = [
        contract.ROOT / name
        for name in (
            "README.md",
            "CHANGELOG.md",
            "SECURITY.md",
            "Makefile",
            "mkdocs.yml",
            "pyproject.toml",
        )
    ]
    for part in PRODUCT:
        files += [
            path
            for path in (contract.ROOT / part).rglob("*")
            if path.suffix in {".py", ".md", ".yml", ".yaml", ".toml", ".proto", ".sh"}
            and "lre/v1" not in path.as_posix()
        ]
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"\bissue ?#?[0-9]+", line, re.IGNORECASE):
                found.append(f"{path.relative_to(contract.ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_runbook_has_one_entry_per_alert() -> None:
    rules = yaml.safe_load((contract.DEPLOY / "prometheus" / "lre-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    text = OPERATIONS.read_text()
    runbook = text[text.index("## Alerts runbook") :]
    entries = set(re.findall(r"^### (\S+)$", runbook, re.MULTILINE))
    assert alerts, "no alerts found"
    assert entries == alerts, f"missing {alerts - entries}, unknown {entries - alerts}"


def test_every_alert_says_what_it_means_and_links_its_runbook_entry() -> None:
    rules = yaml.safe_load((contract.DEPLOY / "prometheus" / "lre-rules.yml").read_text())
    text = OPERATIONS.read_text()
    runbook = text[text.index("## Alerts runbook") :]
    anchors = {e.lower() for e in re.findall(r"^### (\S+)$", runbook, re.MULTILINE)}
    wrong = []
    for rule in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
        annotations = rule.get("annotations", {})
        url = annotations.get("runbook_url", "")
        if not annotations.get("description") or not annotations.get("summary"):
            wrong.append(f"{rule['alert']}: no summary or description")
        if (
            url != f"docs/operations.md#{rule['alert'].lower()}"
            or rule["alert"].lower() not in anchors
        ):
            wrong.append(f"{rule['alert']}: runbook_url {url!r}")
    assert not wrong, "\n".join(wrong)


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
