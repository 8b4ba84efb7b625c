"""`lre-server`'s one-off commands given wrong arguments, a database that is
not there, files that are not what they should be: one line naming the
problem and an exit status (2: the command as given; 1: the world around
it), never a traceback, never a password."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import BIN


def _run(
    tmp_path: Path, *args: str, database: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LRE_CONFIG"}
    env["LRE_SERVER_DATABASE_URL"] = database or f"sqlite:///{tmp_path / 'lre.db'}"
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")  # a file, not JSON
    return subprocess.run(
        [str(BIN / "lre-server"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("rekey", "--batch", "0"), "must be at least 1"),
        (("move-content", "--to", "database", "--batch", "-1"), "must be at least 1"),
        (("verify-log", "--progress-every", "-5"), "must be 0 or more"),
        (
            ("export", "--from", "2026-12-31T00:00:00Z", "--to", "2026-01-01T00:00:00Z", "out"),
            "--from must be before --to",
        ),
        (("verify-log", "--compromised", "/nonexistent"), "No such file"),
        (("verify-log", "--compromised", "hosts"), "not a file of compromised keys"),
    ],
)
def test_a_command_given_wrong_arguments_says_which(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    done = _run(tmp_path, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_database_url_wrong_or_unreachable_is_one_line_without_its_password(
    tmp_path: Path,
) -> None:
    garbled = _run(tmp_path, "migrate", database="not-a-url-secretpw")
    assert garbled.returncode == 2 and "is not a database URL" in garbled.stderr
    unreachable = _run(
        tmp_path, "migrate", database="postgresql+psycopg://postgres:secretpw@127.0.0.1:1/x"
    )
    assert unreachable.returncode == 1 and "database is unreachable" in unreachable.stderr
    for done in (garbled, unreachable):
        assert "Traceback" not in done.stderr and "secretpw" not in done.stdout + done.stderr
