"""lre.runtime.config: defaults, TOML file, environment, in that order of priority."""

from __future__ import annotations

from pathlib import Path

import pytest

from lre.runtime.config import ConfigError, load
from lre.signer.config import SignerSettings


def test_defaults_file_and_environment(tmp_path: Path) -> None:
    assert load(SignerSettings, "signer", {}).grpc_address == "127.0.0.1:50052"
    config = tmp_path / "lre.toml"
    config.write_text('[signer]\ngrpc_address = "0.0.0.0:7000"\nprocesses = 3\nqualified = true\n')
    from_file = load(SignerSettings, "signer", {"LRE_CONFIG": str(config)})
    assert (from_file.grpc_address, from_file.processes, from_file.qualified) == (
        "0.0.0.0:7000",
        3,
        True,
    )
    env = {
        "LRE_CONFIG": str(config),
        "LRE_SIGNER_PROCESSES": "2",
        "LRE_SIGNER_PIN_FILE": "/run/pin",
    }
    from_env = load(SignerSettings, "signer", env)
    assert (from_env.grpc_address, from_env.processes, from_env.pin_file) == (
        "0.0.0.0:7000",
        2,
        Path("/run/pin"),
    )


def test_errors_name_the_setting_never_its_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LRE_SIGNER_PROCESSES: expected int"):
        load(SignerSettings, "signer", {"LRE_SIGNER_PROCESSES": "two-secret"})
    config = tmp_path / "lre.toml"
    config.write_text('[signer]\npin = "1234"\n')
    with pytest.raises(ConfigError, match=r"unknown settings: pin") as raised:
        load(SignerSettings, "signer", {"LRE_CONFIG": str(config)})
    assert "1234" not in str(raised.value)


def test_pin_comes_from_the_file_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n")
    monkeypatch.setenv("LRE_SIGNER_PIN", "from-env")
    assert SignerSettings(pin_file=pin_file).pin() == "from-file"
    assert SignerSettings().pin() == "from-env"
