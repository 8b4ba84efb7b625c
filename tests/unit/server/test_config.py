"""The server's settings that are more than a value: parsed and checked."""

from __future__ import annotations

import pytest

from lre.runtime.config import ConfigError, load
from lre.server.config import ServerSettings
from lre.server.domain.identity import AssuranceLevel


def test_senders_are_proofed_high_unless_set_to_substantial() -> None:
    assert load(ServerSettings, "server", {}).sender_level() is AssuranceLevel.HIGH
    lowered = load(ServerSettings, "server", {"LRE_SERVER_SENDER_MIN_LEVEL": "Substantial"})
    assert lowered.sender_level() is AssuranceLevel.SUBSTANTIAL
    for wrong in ("low", "highest", ""):
        settings = load(ServerSettings, "server", {"LRE_SERVER_SENDER_MIN_LEVEL": wrong})
        with pytest.raises(ConfigError, match="LRE_SERVER_SENDER_MIN_LEVEL"):
            settings.sender_level()


def test_tree_heads_go_to_one_directory_and_any_witnesses() -> None:
    from pathlib import Path

    from lre.server.services.journal import effective_settings, settings_digest

    assert load(ServerSettings, "server", {}).tree_head_targets() == (None, [])
    settings = load(
        ServerSettings,
        "server",
        {
            "LRE_SERVER_TREE_HEAD_EXPORT": "var/heads, syslog+udp://10.0.0.5:514,"
            "syslog+unix:///dev/log,https://witness.example/heads?t=x"
        },
    )
    assert settings.tree_head_targets() == (
        Path("var/heads"),
        [
            "syslog+udp://10.0.0.5:514",
            "syslog+unix:///dev/log",
            "https://witness.example/heads?t=x",
        ],
    )
    for wrong in ("a,b", "ftp://witness.example/heads", "syslog+tcp://h:514"):
        bad = load(ServerSettings, "server", {"LRE_SERVER_TREE_HEAD_EXPORT": wrong})
        with pytest.raises(ConfigError, match="LRE_SERVER_TREE_HEAD_EXPORT"):
            bad.tree_head_targets()
    # The journal's digest of the settings never sees a database password.
    secret = load(
        ServerSettings,
        "server",
        {"LRE_SERVER_DATABASE_URL": "postgresql+psycopg://lre:s3cr3t@db.internal/lre"},
    )
    assert effective_settings(secret)["database_url"] == (
        "postgresql+psycopg://lre:***@db.internal/lre"
    )
    assert settings_digest(secret) != settings_digest(settings)
    assert settings_digest(secret) == settings_digest(
        load(
            ServerSettings,
            "server",
            {"LRE_SERVER_DATABASE_URL": "postgresql+psycopg://lre:other@db.internal/lre"},
        )
    )
