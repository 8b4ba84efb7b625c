"""The server's layers import only what they may: the domain nothing of the
others (nor SQL, nor gRPC), the API no storage, the services no API, storage
no services; only the composition root wires them together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[3] / "lre" / "server"

FORBIDDEN = {
    "domain": ("lre.server.storage", "lre.server.api", "lre.server.services", "lre.server.adapters",
               "lre.server.workers", "sqlalchemy", "grpc"),
    "api": ("lre.server.storage", "lre.server.workers", "lre.server.bootstrap"),
    "services": ("lre.server.api", "lre.server.workers", "lre.server.bootstrap"),
    "storage": ("lre.server.api", "lre.server.services", "lre.server.workers"),
    "workers": ("lre.server.api",),
}  # fmt: skip
# The identity servicer still reads rows; its split (issue 13) removes this.
PENDING = {SERVER / "api" / "identity.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_must_not(layer: str) -> None:
    modules = sorted(set((SERVER / layer).rglob("*.py")) - PENDING)
    assert modules
    found = [
        f"{path.relative_to(SERVER)} imports {name}"
        for path in modules
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])
    ]
    assert not found
