"""Each layer imports only what it may (docs/architecture.md): the domain
nothing of the others (nor SQL, nor gRPC); the API no storage; the services
no API; storage no services; the shared runtime neither the server nor the
signer; server and signer not each other. Only the composition root
(lre.server.bootstrap) wires them together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LRE = Path(__file__).resolve().parents[2] / "lre"

# Package (relative to lre/) -> imports it must not make.
FORBIDDEN = {
    "server/domain": (
        "lre.server.storage", "lre.server.api", "lre.server.services", "lre.server.adapters",
        "lre.server.workers", "lre.server.bootstrap", "lre.runtime", "lre.v1", "sqlalchemy",
        "grpc",
    ),
    "server/api": (
        "lre.server.storage", "lre.server.workers", "lre.server.bootstrap", "sqlalchemy",
    ),
    "server/services": ("lre.server.api", "lre.server.workers", "lre.server.bootstrap", "grpc"),
    "server/storage": ("lre.server.api", "lre.server.services", "lre.server.workers"),
    "server/workers": ("lre.server.api", "lre.server.bootstrap"),
    "server": ("lre.signer", "lre.client", "lre.dev"),
    "signer": ("lre.server", "lre.client"),
    "runtime": ("lre.server", "lre.signer", "lre.client", "lre.dev"),
    "verify": ("lre.server", "lre.signer", "lre.client", "lre.dev"),
}  # fmt: skip
# Exceptions, each with its reason.
ALLOWED = {
    # The one error mapping turns a lost database into UNAVAILABLE for every RPC.
    ("server/api/errors.py", "sqlalchemy.exc"),
    ("server/api/errors.py", "sqlalchemy.exc.DBAPIError"),
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(root: Path, package: str) -> list[str]:
    return [
        f"{path.relative_to(root)} imports {name}"
        for path in sorted((root / package).rglob("*.py"))
        for name in sorted(imports_of(path))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
        and (str(path.relative_to(root)), name) not in ALLOWED
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_must_not(package: str) -> None:
    if not (LRE / package).is_dir():
        pytest.fail(f"lre/{package} is gone: update FORBIDDEN and docs/architecture.md")
    assert violations(LRE, package) == []


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("server/domain", "from lre.server.storage import models\n"),
        ("server/domain", "import sqlalchemy\n"),
        ("server/api", "from lre.server.storage.models import Letter\n"),
        ("server/services", "from lre.server.api import errors\n"),
        ("runtime", "from lre.server.config import ServerSettings\n"),
        ("signer", "import lre.server.bootstrap\n"),
    ],
)
def test_the_check_catches_a_planted_import(tmp_path: Path, package: str, source: str) -> None:
    """The table is live: one forbidden import planted in a layer is named."""
    (tmp_path / package).mkdir(parents=True)
    (tmp_path / package / "planted.py").write_text(source)
    assert violations(tmp_path, package) == [
        f"{package}/planted.py imports {name}"
        for name in sorted(imports_of(tmp_path / package / "planted.py"))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert violations(tmp_path, package)
