"""The version of an installed part, for `--version` and the logs."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "lre_build_info",
    "Always 1: the part and version this process runs",
    ["part", "version", "python"],
    multiprocess_mode="max",
)


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


def export_build_info(distribution: str) -> None:
    """``lre_build_info{part, version, python} 1``: which version each
    process runs, e.g. during a rolling upgrade."""
    BUILD_INFO.labels(distribution, version_of(distribution), platform.python_version()).set(1)
