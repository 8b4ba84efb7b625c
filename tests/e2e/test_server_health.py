"""Each server service is SERVING exactly while what it needs answers."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from signer.devsetup import DevPaths
from tests.conftest import signer_env
from tests.support import BIN, NOT_SERVING, SERVING, free_port, health_status, running, wait_for

IDENTITY, CUSTODY = "lre.v1.IdentityService", "lre.v1.CustodyService"


def _server_env(tmp_path: Path, database_url: str, signer_port: int) -> dict[str, str]:
    key = tmp_path / "server.key"
    key.write_text(secrets.token_hex(32))
    env = {
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": database_url,
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_SIGNER_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SERVER_HEALTH_CHECK_INTERVAL_S": "0.2",
    }
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


def test_custody_follows_the_signer(dev_var: DevPaths, tmp_path: Path) -> None:
    signer_port = free_port()
    env = _server_env(tmp_path, f"sqlite:///{tmp_path / 'lre.db'}", signer_port)
    address = env["LRE_SERVER_GRPC_ADDRESS"]
    with running([str(BIN / "lre-server"), "serve"], env, tmp_path / "server.log"):
        assert wait_for(lambda: health_status(address, IDENTITY) == SERVING)
        assert wait_for(lambda: health_status(address, CUSTODY) == NOT_SERVING)
        signer = running(
            [str(BIN / "lre-signer"), "serve"],
            signer_env(dev_var, signer_port, free_port()),
            tmp_path / "signer.log",
        )
        with signer:
            assert wait_for(lambda: health_status(address, CUSTODY) == SERVING), (
                tmp_path / "server.log"
            ).read_text()
        assert wait_for(lambda: health_status(address, CUSTODY) == NOT_SERVING)
        assert health_status(address, IDENTITY) == SERVING


@pytest.mark.postgres
def test_every_service_follows_the_database(
    postgres_database: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    env = _server_env(tmp_path, postgres_database, free_port())
    address = env["LRE_SERVER_GRPC_ADDRESS"]
    name = make_url(postgres_database).database
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with (
        running([str(BIN / "lre-server"), "serve"], env, tmp_path / "server.log"),
        admin.connect() as connection,
    ):
        assert wait_for(lambda: health_status(address, IDENTITY) == SERVING)
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
        assert wait_for(lambda: health_status(address, IDENTITY) == NOT_SERVING)
        assert health_status(address) == NOT_SERVING
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        assert wait_for(lambda: health_status(address, IDENTITY) == SERVING)
    admin.dispose()
