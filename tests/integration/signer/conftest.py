"""A private copy of the session's SoftHSM token, for tests that break it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lre.signer.devsetup import DevPaths
from tests.support.signer import copy_token


@pytest.fixture
def token_copy(dev_var: DevPaths, tmp_path: Path) -> Path:
    """The token's files copied under ``tmp_path``; returns the SOFTHSM2_CONF to use."""
    return copy_token(dev_var, tmp_path)
