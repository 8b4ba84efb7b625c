"""The server's settings that are more than a value: parsed and checked."""

from __future__ import annotations

from pathlib import Path

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


def test_the_outbox_lease_outlasts_a_hand_off() -> None:
    assert load(ServerSettings, "server", {}).outbox_lease().total_seconds() == 300
    short = {"LRE_SERVER_OUTBOX_LEASE_S": "60", "LRE_SERVER_SMTP_TIMEOUT_S": "30"}
    with pytest.raises(ConfigError, match="LRE_SERVER_OUTBOX_LEASE_S"):
        load(ServerSettings, "server", short).outbox_lease()
    quick = {"LRE_SERVER_OUTBOX_LEASE_S": "8", "LRE_SERVER_SMTP_TIMEOUT_S": "2"}
    assert load(ServerSettings, "server", quick).outbox_lease().total_seconds() == 8


def test_the_mail_sender_is_one_plain_address() -> None:
    assert load(ServerSettings, "server", {}).mail_sender() == "LRE <notifications@lre.invalid>"
    for wrong in ("LRE", "LRE <>", "LRE <a@b.fr>, <c@d.fr>", "Prestataire <avis@prestataire.fré>"):
        settings = load(ServerSettings, "server", {"LRE_SERVER_MAIL_FROM": wrong})
        with pytest.raises(ConfigError, match="LRE_SERVER_MAIL_FROM"):
            settings.mail_sender()


def test_the_spool_directory_is_checked_when_the_server_starts(tmp_path: Path) -> None:
    assert load(ServerSettings, "server", {}).spool() is None
    settings = load(ServerSettings, "server", {"LRE_SERVER_SPOOL_DIR": str(tmp_path)})
    assert settings.spool() == str(tmp_path)
    (tmp_path / "file").write_text("")
    for wrong in (tmp_path / "missing", tmp_path / "file"):
        settings = load(ServerSettings, "server", {"LRE_SERVER_SPOOL_DIR": str(wrong)})
        with pytest.raises(ConfigError, match="LRE_SERVER_SPOOL_DIR"):
            settings.spool()


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


def test_the_object_store_is_configured_whole_or_refused(tmp_path: Path) -> None:
    assert load(ServerSettings, "server", {}).object_store() is None
    (tmp_path / "access").write_text("key-id\n")
    (tmp_path / "secret").write_text("secret\n")
    s3 = {
        "LRE_SERVER_CONTENT_STORE": "s3",
        "LRE_SERVER_S3_BUCKET": "lre-content",
        "LRE_SERVER_S3_ACCESS_KEY_FILE": str(tmp_path / "access"),
        "LRE_SERVER_S3_SECRET_KEY_FILE": str(tmp_path / "secret"),
        "LRE_SERVER_S3_PATH_STYLE": "true",
    }
    store = load(ServerSettings, "server", s3).object_store()
    assert store is not None and (store.access_key, store.secret_key) == ("key-id", "secret")
    assert store.path_style and store.lock_mode == "COMPLIANCE"
    for name, value, named in (
        ("LRE_SERVER_CONTENT_STORE", "disk", "LRE_SERVER_CONTENT_STORE"),
        ("LRE_SERVER_S3_BUCKET", "", "LRE_SERVER_S3_BUCKET"),
        ("LRE_SERVER_S3_OBJECT_LOCK", "forever", "LRE_SERVER_S3_OBJECT_LOCK"),
    ):
        with pytest.raises(ConfigError, match=named):
            load(ServerSettings, "server", s3 | {name: value}).object_store()
    without = {k: v for k, v in s3.items() if not k.endswith("SECRET_KEY_FILE")}
    with pytest.raises(ConfigError, match="LRE_SERVER_S3_SECRET_KEY_FILE"):
        load(ServerSettings, "server", without).object_store()
    unlocked = load(ServerSettings, "server", s3 | {"LRE_SERVER_S3_OBJECT_LOCK": "none"})
    assert unlocked.object_store().lock_mode is None  # type: ignore[union-attr]
    assert any("s3_object_lock" in p for p in unlocked.production_problems()) is False
    production = s3 | {"LRE_SERVER_PROFILE": "production", "LRE_SERVER_S3_OBJECT_LOCK": "none"}
    problems = load(ServerSettings, "server", production).production_problems()
    assert any("s3_object_lock" in p or "S3_OBJECT_LOCK" in p for p in problems)


def test_a_qualified_certificate_cannot_be_required_without_trusted_lists() -> None:
    from lre.server.bootstrap.wiring import identity_policy

    settings = load(
        ServerSettings,
        "server",
        {"LRE_SERVER_PROOFING_REQUIRE_QUALIFIED": "true", "LRE_SERVER_SECRETS_KEY": "00" * 32},
    )
    with pytest.raises(ConfigError, match="LRE_SERVER_PROOFING_REQUIRE_QUALIFIED: needs"):
        identity_policy(settings)
