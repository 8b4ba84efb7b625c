"""The installable parts, as a provider installs them: wheels built from this
checkout, each installed into a fresh environment with only its own
dependencies (from uv.lock's versions), and its commands run there.

The signer sits beside the HSM: its environment must hold no database
driver, no ORM, no PDF engine and no template engine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import BIN

ROOT = Path(__file__).resolve().parents[2]
UV = BIN / "uv"
# Distributions the signer's environment must not contain.
SERVER_ONLY = {"sqlalchemy", "alembic", "psycopg", "typst", "jinja2"}


def _run(*args: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    out = tmp_path_factory.mktemp("dist")
    _run(UV, "build", "--all-packages", "--wheel", "--out-dir", out, "--quiet")
    built = {path.name.split("-")[0].replace("_", "-"): path for path in out.glob("*.whl")}
    assert set(built) == {"lre-common", "lre-server", "lre-signer", "lre-client"}, built
    yield built


def _environment(tmp_path: Path, wheels: dict[str, Path], *parts: str) -> Path:
    """A fresh virtual environment with ``parts`` installed from their wheels,
    third-party packages pinned to uv.lock's versions."""
    venv = tmp_path / "venv"
    _run(UV, "venv", "--quiet", "--python", BIN / "python", venv)
    pins = tmp_path / "pins.txt"
    _run(
        UV, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes",
        "--format", "requirements-txt", "--output-file", pins,
    )  # fmt: skip
    _run(
        UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python",
        "--constraint", pins, *(wheels[p] for p in parts),
    )  # fmt: skip
    return venv


def _installed(venv: Path) -> set[str]:
    listing = _run(UV, "pip", "list", "--python", venv / "bin" / "python", "--format", "freeze")
    return {line.split("==")[0].lower() for line in listing.split() if "==" in line}


def test_the_signer_installs_alone_without_database_or_pdf_engine(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    venv = _environment(tmp_path, wheels, "lre-common", "lre-signer")
    installed = _installed(venv)
    assert {"lre-common", "lre-signer", "python-pkcs11", "grpcio"} <= installed
    assert installed & SERVER_ONLY == set()
    assert "usage" in _run(venv / "bin" / "lre-signer", "--help", cwd=tmp_path)
    assert _run(venv / "bin" / "lre-signer", "--version", cwd=tmp_path).startswith("lre-signer 0.")
    assert "usage" in _run(venv / "bin" / "lre-signer", "check-token", "--help", cwd=tmp_path)


def test_the_server_and_the_client_run_from_their_wheels(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    venv = _environment(tmp_path, wheels, "lre-common", "lre-server", "lre-client")
    installed = _installed(venv)
    assert "lre-signer" not in installed and "python-pkcs11" not in installed
    assert "usage" in _run(venv / "bin" / "lre-server", "--help", cwd=tmp_path)
    assert _run(venv / "bin" / "lre-server", "--version", cwd=tmp_path).strip() == (
        f"lre-server {wheels['lre-server'].name.split('-')[1]}"
    )
    assert "usage" in _run(venv / "bin" / "lre-verify", "--help", cwd=tmp_path)
    assert "usage" in _run(venv / "bin" / "lre-client", "--help", cwd=tmp_path)
    # The generated code is in lre-common's wheel, not only in this checkout.
    code = "import lre.v1.custody_pb2 as m; print(m.__file__)"
    assert str(venv) in _run(venv / "bin" / "python", "-c", code, cwd=tmp_path)
