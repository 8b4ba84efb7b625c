"""The real server process, started against the session's signer, and the
libfaketime that moves its wall clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import glob
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lre.client.maildir import maildir_enrolment_codes
from lre.client.parties import EnrolmentCodes
from lre.dev.tls import TlsFiles
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.storage import db
from lre.server.workers.outbox import quiet_until
from tests.support.parties import outbox_enrolment_code
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import SignerProcess

CUSTODY = "lre.v1.CustodyService"


@dataclass(frozen=True)
class ServerProcess:
    address: str
    metrics_url: str
    maildir: Path
    log: Path
    process: subprocess.Popen[bytes]
    # Where a party finds the enrolment code its proofing e-mailed it.
    enrolment_codes: EnrolmentCodes


# The outbox holds a notice composed within its lease of Paris midnight
# until that midnight, so that the day it prints is the day it is recorded
# (lre.server.workers.outbox). Test servers take a short lease, and one that
# would start closer to midnight than that lease and a test's length starts
# just after midnight instead: no test waits on its notices for midnight.
QUICK_OUTBOX = {"outbox_lease_s": "20", "smtp_timeout_s": "5"}
_TEST_LENGTH = dt.timedelta(seconds=90)


def start_clear_of_midnight(lease_s: float) -> None:
    """Waits past Paris midnight when a server or worker started now with
    this outbox lease would compose notices the outbox holds until then."""
    now = dt.datetime.now(dt.UTC)
    midnight = quiet_until(now, dt.timedelta(seconds=lease_s) + _TEST_LENGTH)
    if midnight is not None:
        time.sleep((midnight - now).total_seconds() + 1)


@contextlib.contextmanager
def server_process(
    signer: SignerProcess,
    tmp_path: Path,
    database_url: str,
    *,
    tls: TlsFiles | None = None,
    environment: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[ServerProcess]:
    """Migrates the database and runs `lre-server serve`; ``settings`` are
    LRE_SERVER_* values by lower-case name (``run_workers="false"``). With
    ``tls``, the server requires mutual TLS with certificates of that CA;
    ``environment`` is added to the serving process's only."""
    settings = {**QUICK_OUTBOX, **settings}
    start_clear_of_midnight(float(settings["outbox_lease_s"]))
    if tls is not None:
        settings = {
            "tls_cert_file": str(tls.service_cert),
            "tls_key_file": str(tls.service_key),
            "tls_client_ca_file": str(tls.ca),
            **settings,
        }
    key = tmp_path / "server.key"
    if not key.exists():  # a restarted server keeps its key
        key.write_text(secrets.token_hex(32))
    maildir = tmp_path / "mail"
    env = {
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": database_url,
        "LRE_SERVER_SIGNER_ADDRESS": signer.grpc_address,
        "LRE_SERVER_MAIL_TRANSPORT": f"maildir:{maildir}",
    }
    settings_env = {f"LRE_SERVER_{name.upper()}": value for name, value in settings.items()}
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        env={**os.environ, **env, **settings_env},
        check=True,
        capture_output=True,
    )
    log = tmp_path / "server.log"
    with contextlib.ExitStack() as started:
        for attempt in range(3):
            port, metrics_port = free_port(), free_port()
            env["LRE_SERVER_GRPC_ADDRESS"] = f"127.0.0.1:{port}"
            env["LRE_SERVER_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
            process = started.enter_context(
                running(
                    [str(BIN / "lre-server"), "serve"],
                    {**env, **settings_env, **(environment or {})},
                    log,
                )
            )
            address = f"127.0.0.1:{port}"
            serving = wait_for(functools.partial(_up_or_gone, process, address, tls), timeout=90)
            assert serving, log.read_text()
            if process.poll() is None:
                break
            # Another test's process took a port drawn for this one between
            # the draw and the start (ports are drawn at random): draw again.
            said = log.read_text()
            assert attempt < 2 and ("is held by another" in said or "is in use" in said), said
        engine = db.make_engine(database_url)
        secrets_key = SecretsKeys(bytes.fromhex(key.read_text()))
        codes: EnrolmentCodes = maildir_enrolment_codes(maildir, timeout_s=30)
        if settings.get("run_workers") == "false":  # no outbox: the mail as queued
            codes = lambda party: outbox_enrolment_code(engine, secrets_key, party)  # noqa: E731
        try:
            yield ServerProcess(
                address, f"http://127.0.0.1:{metrics_port}/metrics", maildir, log, process, codes
            )
        finally:
            engine.dispose()


def _up_or_gone(process: subprocess.Popen[bytes], address: str, tls: TlsFiles | None) -> bool:
    """Serving, or exited (a start refused: no use waiting)."""
    if process.poll() is not None:
        return True
    return bool(health_status(address, CUSTODY, tls=tls, caller="operator") == SERVING)


def libfaketime() -> str:
    """The libfaketime library to preload into a process whose wall clock a
    test moves; fails under CI when it is missing, skips elsewhere."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is required under CI (Debian package faketime)")
        pytest.skip("libfaketime not installed (Debian package faketime): expiry e2e not run")
    return found[0]
