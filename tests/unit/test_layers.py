"""The "may import" table of docs/architecture.md, enforced as an allowlist.

Every package of every installable part has a row naming the first-party
packages it may import; a package without a row fails, so a new room is
placed on purpose. A second table names the third-party libraries some
layers must never reach (the domain no SQL nor gRPC, the services no
SQLAlchemy, ...). The parts' declared dependencies follow the same imports:
a part that imports a library it does not declare would install broken.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("common", "server", "signer", "client")

# Package -> first-party packages it may import (besides itself). A module of
# lre.server is placed in the package of its first two name components
# (lre.server.domain, lre.server.bootstrap, ...); elsewhere in lre.X.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "lre.v1": (),
    "lre.runtime": ("lre.v1",),
    "lre.dev": ("lre.runtime",),
    "lre.signer": ("lre.runtime", "lre.v1", "lre.dev"),
    "lre.verify": ("lre.runtime",),
    "lre.client": ("lre.runtime", "lre.v1", "lre.dev"),
    "lre.server": (),
    "lre.server.domain": (),
    "lre.server.clock": (),
    "lre.server.storage": ("lre.server.domain",),
    "lre.server.adapters": ("lre.server.domain", "lre.runtime", "lre.v1"),
    "lre.server.config": ("lre.server.domain", "lre.server.adapters", "lre.runtime"),
    "lre.server.proofs": ("lre.server.domain", "lre.server.adapters", "lre.runtime"),
    "lre.server.services": (
        "lre.server.domain", "lre.server.storage", "lre.server.adapters", "lre.server.proofs",
        "lre.server.clock",
    ),
    "lre.server.workers": (
        "lre.server.domain", "lre.server.storage", "lre.server.adapters", "lre.server.services",
        "lre.server.clock",
    ),
    "lre.server.api": (
        "lre.server.domain", "lre.server.services", "lre.server.clock", "lre.runtime", "lre.v1",
    ),
    "lre.server.health": ("lre.server.storage", "lre.server.adapters", "lre.runtime"),
    "lre.server.audit": (
        "lre.server.domain", "lre.server.storage", "lre.server.config", "lre.runtime",
    ),
    "lre.server.bootstrap": (
        "lre.server.domain", "lre.server.storage", "lre.server.adapters", "lre.server.services",
        "lre.server.proofs", "lre.server.workers", "lre.server.api", "lre.server.health",
        "lre.server.config", "lre.server.clock", "lre.runtime", "lre.v1",
    ),
    "lre.server.__main__": (
        "lre.server", "lre.server.bootstrap", "lre.server.config", "lre.server.audit",
        "lre.server.domain", "lre.server.storage", "lre.server.services", "lre.runtime",
    ),
}  # fmt: skip

# Package -> third-party libraries it must never import.
MUST_NOT_IMPORT: dict[str, tuple[str, ...]] = {
    "lre.server.domain": ("sqlalchemy", "grpc", "google", "alembic"),
    "lre.server.api": ("sqlalchemy",),
    "lre.server.services": ("sqlalchemy", "grpc", "google"),
    "lre.server.storage": ("grpc", "google"),
    "lre.runtime": ("sqlalchemy", "typst", "jinja2", "pkcs11"),
    "lre.signer": ("sqlalchemy", "alembic", "typst", "jinja2"),
    "lre.verify": ("sqlalchemy", "grpc", "pkcs11"),
}
# Exceptions, each with its reason.
EXCEPTIONS = {
    # The one error mapping turns a lost database into UNAVAILABLE for every RPC.
    ("lre.server.api.errors", "sqlalchemy"),
}


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Every product module of every part, by its import name."""
    for part in PARTS:
        base = root / part
        for path in sorted((base / "lre").rglob("*.py")):
            name = ".".join(path.relative_to(base).with_suffix("").parts)
            yield name.removesuffix(".__init__"), path


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["lre", "server"] and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from lre.server import config` imports lre.server.config, not
            # the package's __init__; elsewhere the module itself is the import.
            if node.module not in ("lre", "lre.server"):
                names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for module, path in modules(root):
        package = package_of(module)
        if package not in MAY_IMPORT:
            found.append(f"{module}: package {package} has no row in MAY_IMPORT")
            continue
        if package == "lre.v1":
            continue  # generated
        allowed = (package, *MAY_IMPORT[package])
        for name in sorted(imports_of(path)):
            top = name.split(".")[0]
            if top == "lre":
                target = package_of(name)
                if target not in allowed:
                    found.append(f"{module} imports {target}")
            elif top in MUST_NOT_IMPORT.get(package, ()) and (module, top) not in EXCEPTIONS:
                found.append(f"{module} imports {top}")
    return sorted(set(found))


def test_every_package_imports_only_what_its_row_allows() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("server/lre/server/domain/planted.py", "import sqlalchemy\n", "imports sqlalchemy"),
        ("server/lre/server/domain/planted.py", "from lre.server.storage import models\n",
         "imports lre.server.storage"),
        ("server/lre/server/api/planted.py", "from lre.server.adapters import mail\n",
         "imports lre.server.adapters"),
        ("common/lre/runtime/planted.py", "from lre.server.config import X\n",
         "imports lre.server.config"),
        ("signer/lre/signer/planted.py", "import lre.server.bootstrap\n",
         "imports lre.server.bootstrap"),
        ("server/lre/server/newroom/planted.py", "import json\n", "has no row"),
    ],
)  # fmt: skip
def test_the_check_catches_a_planted_import(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    """The tables are live: one planted import, or a package without a row, is named."""
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def _declared(part: str) -> set[str]:
    project = tomllib.loads((ROOT / part / "pyproject.toml").read_text())["project"]
    names = set()
    # An extra's libraries count: the module that imports them says, when
    # they are missing, which extra to install (lre-common[tracing]).
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    for requirement in [*project["dependencies"], *extras]:
        name = requirement.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("part", PARTS)
def test_each_part_declares_every_library_it_imports(part: str) -> None:
    distributions = metadata.packages_distributions()
    # Every part depends on lre-common, so what common declares is there too.
    declared = _declared(part) | _declared("common")
    missing = set()
    for module, path in modules():
        if (ROOT / part) not in path.parents or package_of(module) == "lre.v1":
            continue
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "lre" or top in sys.stdlib_module_names:
                continue
            dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            if not dists & declared:
                missing.add(f"{module} imports {top} ({', '.join(sorted(dists))})")
    assert sorted(missing) == []
