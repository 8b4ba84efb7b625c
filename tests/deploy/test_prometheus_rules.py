"""deploy/prometheus rules: valid, and each alert proven by promtool's unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required under CI (Debian package prometheus)")
        pytest.skip("promtool not installed (Debian package prometheus); rules not checked")
    return found


def test_rules_are_valid(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "deploy/prometheus/lre-rules.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_bad_series_and_not_on_good(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(ROOT / "tests/prometheus/lre-rules-test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
