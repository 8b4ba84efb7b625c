"""yamllint over every YAML file the project ships outside the code."""

from __future__ import annotations

import subprocess
import sys

from tests.support import contract


def test_yaml_is_lint_clean() -> None:
    targets = ["deploy", ".yamllint.yaml"]
    targets += [
        p for p in ("mkdocs.yml", "buf.yaml", "buf.gen.yaml") if (contract.ROOT / p).exists()
    ]
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "--format", "parsable", *targets],
        cwd=contract.ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
