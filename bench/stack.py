"""The real stack for a benchmark: a fresh token and PKI, a PostgreSQL
database of its own (dropped afterwards), signer and server processes, and
two registered professional parties."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lre.client.maildir import maildir_enrolment_codes
from lre.client.parties import EnrolmentCodes, register_party
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.storage import db
from lre.signer.devsetup import dev_setup
from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.parties import outbox_enrolment_code
from tests.support.processes import BIN, free_port, wait_for
from tests.support.rpc import SERVING, health_status

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat):
    per letter, it counts every process (server, signer, PostgreSQL, mail,
    the benchmark itself), so it means something on a machine left quiet."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stack:
    address: str
    signer_address: str
    database_url: str
    server: subprocess.Popen[bytes]
    sender: str
    sender_token: str
    recipient: str
    recipient_token: str
    # The /metrics addresses of the processes that run the workers.
    worker_metrics: tuple[str, ...]


@contextlib.contextmanager
def running_stack(
    server_processes: int = 1,
    signer_processes: int = 2,
    postgres: str = POSTGRES,
    run_workers: bool = False,
    settings: dict[str, str] | None = None,
    work_processes: int = 0,
    work_nice: int = 0,
) -> Iterator[Stack]:
    """``settings`` are extra LRE_* environment variables for every process.
    With ``work_processes``, the workers run as the deploy kit runs them: in
    that many ``lre-server work`` processes of their own, at ``work_nice``
    (the server processes then without theirs, whatever ``run_workers``)."""
    var = Path(tempfile.mkdtemp(prefix="lre-bench-"))
    paths = dev_setup(var)
    name = f"lre_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    key = var / "server.key"
    key.write_text(secrets.token_hex(32))
    signer_port, server_port = free_port(), free_port()
    env = {
        **os.environ,
        "LRE_CONFIG": str(paths.config),
        "SOFTHSM2_CONF": str(paths.softhsm_conf.resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_PROCESSES": str(signer_processes),
        "LRE_SERVER_PROCESSES": str(server_processes),
        "LRE_SIGNER_LOG_RPCS": "false",
        "LRE_SERVER_DATABASE_URL": database,
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{server_port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_SIGNER_ADDRESS": f"127.0.0.1:{signer_port}",
        "LRE_SERVER_RUN_WORKERS": str(run_workers and not work_processes).lower(),
        "LRE_SERVER_MAIL_TRANSPORT": f"maildir:{var / 'mail'}",
        "LRE_SERVER_LOG_LEVEL": "WARNING",
        # The load generators are one caller (127.0.0.1) and one sender's
        # session with 16 streams in flight, unevenly spread over the
        # processes: only the total cap applies.
        "LRE_SERVER_STREAMS_PER_CALLER": "16",
        "LRE_SERVER_STREAMS_PER_USER": "16",
        **(settings or {}),
    }
    subprocess.run([str(BIN / "lre-server"), "migrate"], env=env, check=True, capture_output=True)
    quiet = subprocess.DEVNULL
    signer = subprocess.Popen(
        [str(BIN / "lre-signer"), "serve"], env=env, stdout=quiet, stderr=quiet
    )
    server = subprocess.Popen(
        [str(BIN / "lre-server"), "serve"], env=env, stdout=quiet, stderr=quiet
    )
    processes = [server, signer]
    worker_metrics = [] if work_processes else [env["LRE_SERVER_METRICS_ADDRESS"]] * run_workers
    for _ in range(work_processes):
        worker_metrics.append(f"127.0.0.1:{free_port()}")
        work = [str(BIN / "lre-server"), "work"]
        processes.insert(0, subprocess.Popen(
            ["nice", "-n", str(work_nice), *work] if work_nice else work,
            env={**env, "LRE_SERVER_METRICS_ADDRESS": worker_metrics[-1]},
            stdout=quiet, stderr=quiet,
        ))  # fmt: skip
    address = f"127.0.0.1:{server_port}"
    try:
        assert wait_for(
            lambda: health_status(address, "lre.v1.CustodyService") == SERVING, timeout=60
        )
        time.sleep(1)
        codes: EnrolmentCodes = maildir_enrolment_codes(var / "mail")
        if not (run_workers or work_processes):  # the outbox does not run: the codes as queued
            engine = db.make_engine(database)
            secrets_key = SecretsKeys(bytes.fromhex(key.read_text()))
            codes = lambda party: outbox_enrolment_code(engine, secrets_key, party)  # noqa: E731
        with grpc.insecure_channel(address) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            fields: dict[str, Any] = {
                "kind": identity_pb2.PARTY_KIND_LEGAL_PERSON,
                "professional": True,
            }
            sender, sender_token = register_party(
                stub, "sender", codes=codes, company_name="Sender", email="s@example.org", **fields
            )
            recipient, recipient_token = register_party(
                stub,
                "recipient",
                codes=codes,
                company_name="Recipient",
                email="r@example.org",
                **fields,
            )
            # A gateway's word that a company is professional is a claim; the
            # operator's decision is what lets it receive without consent.
            stub.SetProfessionalStatus(
                identity_pb2.SetProfessionalStatusRequest(
                    party=recipient, professional=True, basis="Kbis extract", operator_id="bench"
                ),
                timeout=10,
            )
        yield Stack(
            address,
            f"127.0.0.1:{signer_port}",
            database,
            server,
            sender,
            sender_token,
            recipient,
            recipient_token,
            tuple(worker_metrics),
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
