"""docs/configuration.md has one row per setting of each process, and each
row says what the code does: the setting exists, its environment variable is
the one the loader reads, and its default is the code's."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from lre.runtime import config
from tests.support import contract

PAGE = contract.ROOT / "docs" / "configuration.md"
HEADINGS = {"server": "## Server settings", "signer": "## Signer settings"}
ROW = re.compile(
    r"^\| `(?P<name>[a-z0-9_]+)` \| `(?P<env>[A-Z0-9_]+)` \| (?P<default>.*?) \| .+ \|$"
)


def rows(section: str) -> list[dict[str, str]]:
    """The table rows under the section's heading, up to the next ``## ``."""
    text = PAGE.read_text()
    start = text.index(HEADINGS[section] + "\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return [m.groupdict() for m in map(ROW.match, body.splitlines()) if m]


def field(section: str, name: str) -> dataclasses.Field[Any]:
    return {f.name: f for f in dataclasses.fields(contract.SECTIONS[section])}[name]


def kind(section: str, name: str) -> Any:
    """The field's type, ``X | None`` read as ``X``."""
    hint = typing.get_type_hints(contract.SECTIONS[section])[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


@pytest.mark.parametrize("section", sorted(HEADINGS))
def test_every_setting_has_one_row_and_every_row_is_a_setting(section: str) -> None:
    names = [row["name"] for row in rows(section)]
    assert len(names) == len(set(names)), (
        f"rows twice: {sorted({n for n in names if names.count(n) > 1})}"
    )
    documented, real = set(names), contract.fields(section)
    assert not real - documented, f"settings without a row: {sorted(real - documented)}"
    assert not documented - real, f"rows naming no setting: {sorted(documented - real)}"


@pytest.mark.parametrize("section", sorted(HEADINGS))
def test_each_row_names_the_variable_the_loader_reads(section: str) -> None:
    """The documented variable, set alone, changes that setting."""
    for row in rows(section):
        name, default = row["name"], field(section, row["name"]).default
        value = changed(kind(section, name), default)
        loaded: object = config.load(contract.SECTIONS[section], section, {row["env"]: value})
        assert str(getattr(loaded, name)).lower() == value.lower(), (row["env"], name)


@pytest.mark.parametrize("section", sorted(HEADINGS))
def test_each_row_shows_the_code_default(section: str) -> None:
    for row in rows(section):
        default = field(section, row["name"]).default
        shown = row["default"]
        if default is None:
            assert shown.startswith("—"), (row["name"], shown)
            continue
        literal = re.match(r"`([^`]*)`", shown)
        assert literal, f"{row['name']}: the default as a `literal` first, not {shown!r}"
        text = literal[1]
        if isinstance(default, bool):
            assert text == str(default).lower(), (row["name"], text)
        elif isinstance(default, int | float):
            assert float(text) == default, (row["name"], text)
        elif default == "":
            assert text == '""', (row["name"], text)
        else:
            assert text == str(default), (row["name"], text)


def changed(kind: Any, default: Any) -> str:
    """A value other than the default, as an environment variable gives it."""
    if kind is bool:
        return str(not default).lower()
    if kind is int:
        return str((default or 0) + 7)
    if kind is float:
        return str((default or 0.0) + 7.5)
    if kind is Path:
        return "/elsewhere/file"
    return f"{default}-changed"
