"""What the deployment files may name: the settings the code's settings classes
really have, the commands its programs really offer, and an explicit list of
those still to come (each to be removed from here once it lands)."""

from __future__ import annotations

import dataclasses
import functools
import re
import subprocess
from pathlib import Path

from lre.server.config import ServerSettings
from lre.signer.config import SignerSettings
from tests.support.processes import BIN

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Named by the manifests ahead of the code (written before the code has them). A name
# here that the code now has fails the test, so that this list only shrinks.
SETTINGS_TO_COME: dict[str, set[str]] = {
    "server": set(),
    "signer": set(),
}
COMMANDS_TO_COME: set[tuple[str, str]] = set()

SECTIONS = {"server": ServerSettings, "signer": SignerSettings}


def fields(section: str) -> set[str]:
    return {f.name for f in dataclasses.fields(SECTIONS[section])}


def unknown_settings(section: str, names: set[str]) -> set[str]:
    return names - fields(section) - SETTINGS_TO_COME[section]


def unknown_env(names: set[str]) -> set[str]:
    """``LRE_SERVER_*``/``LRE_SIGNER_*`` names no settings class has."""
    unknown = set()
    for name in names:
        match = re.fullmatch(r"LRE_(SERVER|SIGNER)_([A-Z0-9_]+)", name)
        if match and unknown_settings(match[1].lower(), {match[2].lower()}):
            unknown.add(name)
    return unknown


@functools.cache
def subcommands(program: str) -> frozenset[str]:
    usage = subprocess.run(
        [str(BIN / program), "--help"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\{([a-z,-]+)\}", usage)
    assert match, usage
    return frozenset(match[1].split(","))


def unknown_command(argv: list[str]) -> str | None:
    """``argv``'s program and subcommand, unless the program offers it."""
    program, command = argv[0], argv[1]
    if program not in ("lre-server", "lre-signer", "lre-client"):
        return f"{program}: not one of the image's programs"
    if (program, command) in COMMANDS_TO_COME or command in subcommands(program):
        return None
    return f"{program} {command}: no such command"
