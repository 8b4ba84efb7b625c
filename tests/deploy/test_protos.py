"""The protos as a published contract: `buf lint` clean (exceptions justified
in buf.yaml) and no breaking change since the last release."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support import contract
from tests.support.processes import BIN

# The protos of the last release. No release is tagged yet: this is the commit
# the published contract was frozen at; move it to the tag when there is one.
LAST_RELEASE = "2e49a1f"
BUF = BIN / "buf"  # buf-bin, a dev extra


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args], cwd=contract.ROOT, capture_output=True, text=True, timeout=120
    )


def test_buf_lint_is_clean() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def last_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", LAST_RELEASE, "protos"],
        cwd=contract.ROOT,
        capture_output=True,
    )
    assert archive.returncode == 0, (
        f"the last release's protos ({LAST_RELEASE}) are not in this clone "
        f"(a shallow clone? fetch it): {archive.stderr.decode()}"
    )
    root = tmp_path_factory.mktemp("release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root / "protos"


def test_no_breaking_change_since_the_last_release(last_release: Path) -> None:
    result = _buf("breaking", "--against", str(last_release))
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_changes_are_caught(last_release: Path, tmp_path: Path) -> None:
    """The check itself works: a renamed enum value is reported."""
    changed = tmp_path / "protos"
    subprocess.run(["cp", "-r", str(contract.ROOT / "protos"), str(changed)], check=True)
    common = changed / "lre" / "v1" / "common.proto"
    text = common.read_text()
    assert "LETTER_STATE_REJECTED = 1;" in text
    common.write_text(text.replace("LETTER_STATE_REJECTED = 1;", "LETTER_STATE_WITHDRAWN_X = 1;"))
    (tmp_path / "buf.yaml").write_text((contract.ROOT / "buf.yaml").read_text())
    result = subprocess.run(
        [str(BUF), "breaking", "--against", str(last_release)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LETTER_STATE_REJECTED" in result.stdout


def test_the_api_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(contract.ROOT / "deploy" / "dev" / "api_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reference = (contract.ROOT / "docs" / "api-reference.md").read_text()
    # Every service and method of the contract has its heading.
    for proto in sorted((contract.ROOT / "protos" / "lre" / "v1").glob("*.proto")):
        for service, body in re.findall(
            r"^service (\w+) \{(.*?)^\}", proto.read_text(), re.M | re.S
        ):
            assert f"\n## {service}\n" in reference
            for method in re.findall(r"^\s*rpc (\w+)\(", body, re.M):
                assert f"\n### {service}.{method}\n" in reference
