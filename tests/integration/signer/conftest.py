"""A private copy of the session's SoftHSM token, for tests that break it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lre.signer.devsetup import DevPaths


@pytest.fixture
def token_copy(dev_var: DevPaths, tmp_path: Path) -> Path:
    """The token's files copied under ``tmp_path``; returns the SOFTHSM2_CONF to use."""
    tokens = tmp_path / "tokens"
    shutil.copytree(dev_var.root / "softhsm" / "tokens", tokens)
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return conf
