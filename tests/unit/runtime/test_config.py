"""lre.runtime.config: defaults, TOML file, environment, in that order of priority."""

from __future__ import annotations

from pathlib import Path

import pytest

from lre.runtime.config import ConfigError, load
from lre.server.config import ServerSettings
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


def test_relative_secret_paths_are_in_the_credentials_directory(tmp_path: Path) -> None:
    config = tmp_path / "lre.toml"
    config.write_text(
        '[server]\nsecrets_key_file = "secrets.key"\ntls_key_file = "/etc/lre/tls.key"\n'
        'secrets_key_files_previous = "old-1.key, /keys/old-2.key"\n'
    )
    env = {"LRE_CONFIG": str(config), "CREDENTIALS_DIRECTORY": "/run/credentials/lre.service"}
    settings = load(ServerSettings, "server", env)
    assert settings.secrets_key_file == Path("/run/credentials/lre.service/secrets.key")
    assert settings.tls_key_file == Path("/etc/lre/tls.key")  # absolute: as given
    assert settings.secrets_key_files_previous == (
        "/run/credentials/lre.service/old-1.key,/keys/old-2.key"
    )
    # Defaults are not moved; without the variable, nothing is.
    signer = load(
        SignerSettings, "signer", {"CREDENTIALS_DIRECTORY": "/run/c", "LRE_SIGNER_PIN_FILE": "pin"}
    )
    assert signer.ca_chain_file == Path("var/pki/ca-chain.pem")
    assert signer.pin_file == Path("/run/c/pin")
    assert load(ServerSettings, "server", {"LRE_CONFIG": str(config)}).secrets_key_file == Path(
        "secrets.key"
    )


def test_secrets_keys_current_and_previous(tmp_path: Path) -> None:
    current, old = tmp_path / "current.key", tmp_path / "old.key"
    current.write_text("11" * 32 + "\n")
    old.write_text("22" * 32)
    keys = ServerSettings(
        secrets_key_file=current, secrets_key_files_previous=f"{old}"
    ).secrets_key()
    assert keys.current == b"\x11" * 32 and keys.previous == (b"\x22" * 32,)
    assert ServerSettings(secrets_key_file=current).secrets_key().previous == ()
    old.write_text("not hex, and secret")
    with pytest.raises(ConfigError) as bad:
        ServerSettings(secrets_key_file=current, secrets_key_files_previous=str(old)).secrets_key()
    assert str(bad.value) == "LRE_SERVER_SECRETS_KEY_FILES_PREVIOUS: expected 32 bytes in hex"


def test_the_database_password_comes_from_its_file_whatever_it_holds(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    secret = tmp_path / "password"
    secret.write_text("p@ss/w%rd:1\n")
    url = "postgresql+psycopg://lre@lre-db-rw:5432/lre"
    settings = load(
        ServerSettings,
        "server",
        {"LRE_SERVER_DATABASE_URL": url, "LRE_SERVER_DATABASE_PASSWORD_FILE": str(secret)},
    )
    parsed = make_url(settings.database())
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "lre",
        "p@ss/w%rd:1",
        "lre-db-rw",
        5432,
        "lre",
    )
    assert load(ServerSettings, "server", {"LRE_SERVER_DATABASE_URL": url}).database() == url
    for bad_url in ("postgresql+psycopg://lre-db-rw/lre", "postgresql+psycopg://lre:x@db/lre"):
        env = {"LRE_SERVER_DATABASE_URL": bad_url, "LRE_SERVER_DATABASE_PASSWORD_FILE": str(secret)}
        with pytest.raises(ConfigError, match="LRE_SERVER_DATABASE_PASSWORD_FILE"):
            load(ServerSettings, "server", env).database()
    env = {"LRE_SERVER_DATABASE_URL": url, "LRE_SERVER_DATABASE_PASSWORD_FILE": "/nonexistent"}
    with pytest.raises(ConfigError, match="LRE_SERVER_DATABASE_PASSWORD_FILE"):
        load(ServerSettings, "server", env).database()
