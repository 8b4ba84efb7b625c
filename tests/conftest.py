"""Fixtures over the real components: SoftHSM, the signer process,
PostgreSQL, an S3-compatible object server (SeaweedFS)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from lre.dev.tls import TlsFiles, create_dev_tls
from lre.signer.config import SignerSettings
from lre.signer.devsetup import DevPaths, dev_setup, settings_for
from tests.support.databases import POSTGRES_URL
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.seaweed import SeaweedServer, seaweed_server
from tests.support.signer import SignerProcess, signer_env


@pytest.fixture(scope="session")
def dev_var(tmp_path_factory: pytest.TempPathFactory) -> DevPaths:
    """One SoftHSM token, its keys and a local PKI for the whole test session."""
    return dev_setup(tmp_path_factory.mktemp("var"))


@pytest.fixture(scope="session")
def signer_settings(dev_var: DevPaths) -> SignerSettings:
    return settings_for(dev_var)


@pytest.fixture(scope="session")
def signer_process(
    dev_var: DevPaths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignerProcess]:
    """The real `lre-signer serve` on free ports."""
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("logs") / "signer.log"
    with running(
        [str(BIN / "lre-signer"), "serve"], signer_env(dev_var, grpc_port, http_port), log
    ):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address) == SERVING, timeout=90), log.read_text()
        yield SignerProcess(address, f"http://127.0.0.1:{http_port}", dev_var, log)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A development CA with server and client certificates, for mutual TLS."""
    return create_dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS server (`weed server -s3`) for the session, on free
    ports; each test takes a fresh bucket of it. A test that stops a server
    starts its own (tests.support.seaweed.seaweed_server)."""
    with seaweed_server(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """PostgreSQL is required in CI; elsewhere its tests skip, saying why."""
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (set LRE_TEST_POSTGRES_URL); not run")
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test twice: on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lre.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"lre_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """States plainly whether the PostgreSQL tests ran."""
    outcomes: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "postgres" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        terminalreporter.write_line(f"PostgreSQL tests ({POSTGRES_URL}): {counts}")
