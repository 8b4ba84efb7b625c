"""The version of an installed part, for `--version` and the logs."""

from __future__ import annotations

import argparse
from importlib import metadata


def version_of(distribution: str) -> str:
    """The installed version of ``distribution`` (e.g. "lre-server"); "unknown"
    when it runs from a tree that was never installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_option(parser: argparse.ArgumentParser, distribution: str) -> None:
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version_of(distribution)}"
    )
