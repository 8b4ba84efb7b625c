"""The tests' own layout: a library in tests/support, tests that use it.

A test module is never a library: no module (test, conftest, support or
bench) imports a ``test_*`` module or a conftest, what tests share lives in
tests/support, and conftests only define fixtures (and pytest's hooks),
importing what they build on from tests/support. The unit and integration
tests mirror the product's packages: tests/unit/server/domain holds the tests
of lre.server.domain. Ruff bans importing the conftests too (banned-api in
pyproject.toml), for an editor's early warning; this test keeps that list
complete.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"
PARTS = ("common", "server", "signer", "client")
# Test modules of the whole repository rather than of one package.
REPOSITORY_WIDE = {TESTS / "unit" / "test_layers.py", TESTS / "unit" / "test_test_layout.py"}


def _python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(root.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` may import, at any depth: ``from a import b``
    yields a and a.b (b may be a module); relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _is_test_or_conftest(module: str) -> bool:
    return any(part == "conftest" or part.startswith("test_") for part in module.split("."))


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in _python_files(TESTS, ROOT / "bench")
        for line, module in _imported(path)
        if module.startswith("tests.") and _is_test_or_conftest(module)
    ]
    assert not found, "import it from tests/support instead:\n" + "\n".join(found)


def test_helpers_live_in_tests_support() -> None:
    """Outside tests/support: test modules, conftests and empty __init__.py only."""
    stray = []
    for path in _python_files(TESTS):
        if path.is_relative_to(SUPPORT) or path.name == "conftest.py":
            continue
        if path.name == "__init__.py":
            body = ast.parse(path.read_text(encoding="utf-8")).body
            if any(not _is_docstring(node) for node in body):
                stray.append(path.relative_to(ROOT))
        elif not path.name.startswith("test_"):
            stray.append(path.relative_to(ROOT))
    assert not stray, "move these helpers to tests/support: " + ", ".join(map(str, stray))


def test_tests_support_holds_no_tests() -> None:
    """pytest would collect them, and a test module there would be imported as a library."""
    tests = [p for p in _python_files(SUPPORT) if p.name.startswith("test_")]
    tests += [p for p in _python_files(SUPPORT) if p.name == "conftest.py"]
    assert not tests


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def _is_fixture(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def test_conftests_only_define_fixtures() -> None:
    """Imports, fixtures and pytest hooks (``pytest_*``); no helper, class or constant."""
    found = []
    for path in _python_files(TESTS):
        if path.name != "conftest.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if _is_docstring(node) or isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.FunctionDef) and (
                _is_fixture(node) or node.name.startswith("pytest_")
            ):
                continue
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {type(node).__name__}")
    assert not found, "move these to tests/support:\n" + "\n".join(found)


def test_ruff_bans_importing_every_conftest() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    banned = pyproject["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"]
    conftests = {_module_name(p) for p in _python_files(TESTS) if p.name == "conftest.py"}
    assert {name for name in banned if name.endswith("conftest")} == conftests


def _package_dir(dotted: tuple[str, ...]) -> Path | None:
    for part in PARTS:
        candidate = ROOT / part / "lre" / Path(*dotted)
        if candidate.is_dir() or candidate.with_suffix(".py").is_file():
            return candidate
    return None


def test_unit_and_integration_tests_mirror_the_packages() -> None:
    """tests/{unit,integration}/a/b holds the tests of lre.a.b (a package or module)."""
    unplaced = []
    for kind in ("unit", "integration"):
        top = TESTS / kind
        for directory in sorted(p for p in top.rglob("*") if p.is_dir()):
            if directory.name == "__pycache__" or "__pycache__" in directory.parts:
                continue
            if _package_dir(directory.relative_to(top).parts) is None:
                unplaced.append(directory.relative_to(ROOT))
        for path in top.glob("test_*.py"):
            if path not in REPOSITORY_WIDE:
                unplaced.append(path.relative_to(ROOT))
    assert not unplaced, "no product package of that name: " + ", ".join(map(str, unplaced))
