"""`lre-server rekey` after a wrap key rotation, on PostgreSQL with the real
signer: a few thousand letters re-wrapped in batches, an interrupted run
resumed, and the content still downloaded through the API once the older
wrap key is gone."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, func, insert, select

from lre.server.adapters.signer import SignerClient, letter_key_context
from lre.server.domain.letters import LetterState
from lre.server.storage import models
from lre.signer.devsetup import DevPaths
from lre.signer.wrapping import key_id
from lre.v1 import custody_pb2, custody_pb2_grpc, identity_pb2_grpc
from tests.support.clients import ANNEX, CONTENT, deposit_letter, register_company, wait_notified
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.server import server_process
from tests.support.signer import SignerProcess, signer_env

BULK = 2000
NEW = b"\x02" + key_id("lre-wrap-2")  # AES-GCM under the new wrap key

pytestmark = pytest.mark.postgres


def token_copy(dev_var: DevPaths, root: Path) -> Path:
    """The session token's files copied under ``root``; the SOFTHSM2_CONF to use."""
    shutil.copytree(dev_var.root / "softhsm" / "tokens", root / "tokens")
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    return conf


@contextlib.contextmanager
def signer(dev_var: DevPaths, conf: Path, log: Path, **settings: str) -> Iterator[SignerProcess]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **signer_env(dev_var, grpc_port, http_port),
        "SOFTHSM2_CONF": str(conf),
        **{f"LRE_SIGNER_{k.upper()}": v for k, v in settings.items()},
    }
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address, "lre.v1.SigningService") == SERVING), (
            log.read_text()
        )
        yield SignerProcess(address, f"http://127.0.0.1:{http_port}", dev_var, log)


def bulk_letters(
    database_url: str, signer_address: str, sender: str, recipient: str
) -> dict[uuid.UUID, bytes]:
    """BULK letter rows with real wrapped keys, inserted at once (the content
    is not needed to re-wrap their keys); returns each letter's content key."""
    ids = [uuid.uuid4() for _ in range(BULK)]
    keys = {i: os.urandom(32) for i in ids}
    client = SignerClient(signer_address)
    wrapped: list[bytes] = []
    for start in range(0, BULK, 256):
        part = ids[start : start + 256]
        wrapped += client.wrap_keys([(keys[i], letter_key_context(i)) for i in part])
    client.close()
    now = dt.datetime.now(dt.UTC)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(models.Letter.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": i,
                    "reference": f"BULK{n:08d}",
                    "sender_id": uuid.UUID(sender.rsplit("/", 1)[-1]),
                    "recipient_id": uuid.UUID(recipient.rsplit("/", 1)[-1]),
                    "request_id": f"bulk-{n}",
                    "state": LetterState.DEPOSITED,
                    "deposit_time": now,
                    "legal_hold": False,
                    "wrapped_key": w,
                }
                for n, (i, w) in enumerate(zip(ids, wrapped, strict=True))
            ],
        )
    engine.dispose()
    return keys


def current_count(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).where(func.substr(models.Letter.wrapped_key, 1, 9) == NEW)
        ).scalar_one()
    engine.dispose()
    return int(count)


def test_rekey_rewraps_thousands_resumably_and_content_stays_readable(
    dev_var: DevPaths, postgres_database: str, tmp_path: Path
) -> None:
    conf = token_copy(dev_var, tmp_path)
    made = subprocess.run(
        [str(BIN / "lre-signer"), "create-key", "--label", "lre-wrap-2", "--kind", "aes-256"],
        env={**os.environ, "LRE_CONFIG": str(dev_var.config), "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr

    # Before the rotation: three letters through the API, BULK more in bulk.
    with (
        signer(dev_var, conf, tmp_path / "signer-1.log") as old,
        server_process(old, tmp_path, postgres_database, outbox_interval_s="0.2") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender, sender_token = register_company(
            identity, server.enrolment_codes, "ks", "Expediteur SAS", "envoi@exp.example"
        )
        recipient, recipient_token = register_company(
            identity, server.enrolment_codes, "kr", "Dest SA", "courrier@dest.example"
        )
        as_recipient = (("authorization", f"Bearer {recipient_token}"),)
        letters = [deposit_letter(custody, sender_token, recipient, f"k-{n}") for n in range(3)]
        wait_notified(custody, letters, as_recipient)
        keys = bulk_letters(postgres_database, old.grpc_address, sender, recipient)
    total = BULK + len(letters)
    assert current_count(postgres_database) == 0

    env = {
        **os.environ,
        "LRE_SERVER_DATABASE_URL": postgres_database,
        "LRE_SERVER_SECRETS_KEY_FILE": str(tmp_path / "server.key"),
    }
    rotated = {"wrap_key_label": "lre-wrap-2", "wrap_key_labels_previous": "lre-wrap"}
    with signer(dev_var, conf, tmp_path / "signer-2.log", **rotated) as new:
        env["LRE_SERVER_SIGNER_ADDRESS"] = new.grpc_address
        # Killed after its second committed batch.
        first = subprocess.Popen(
            [str(BIN / "lre-server"), "rekey", "--batch", "50"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert first.stdout is not None
        progress = [first.stdout.readline(), first.stdout.readline()]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert all(line.startswith("content keys: ") for line in progress), progress
        done_before = current_count(postgres_database)
        assert 0 < done_before < total, done_before
        # Run again: what is current is skipped, the rest re-wrapped.
        second = subprocess.run(
            [str(BIN / "lre-server"), "rekey"], env=env, capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 0, second.stderr
        summary = re.search(r"rekey done: (\d+) examined, (\d+) re-encrypted", second.stdout)
        assert summary, second.stdout
        assert int(summary[1]) == total
        assert int(summary[2]) == total - done_before  # none twice
        # Every key current: a further run would find nothing to do (the
        # second run skipped the first's, none re-wrapped twice).
        assert current_count(postgres_database) == total

    # The older wrap key is no longer listed: every key still opens, and the
    # content comes back through the API.
    with (
        signer(dev_var, conf, tmp_path / "signer-3.log", wrap_key_label="lre-wrap-2") as newest,
        server_process(newest, tmp_path, postgres_database) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        client = SignerClient(newest.grpc_address)
        engine = create_engine(postgres_database)
        with engine.connect() as connection:
            rows = connection.execute(
                select(models.Letter.id, models.Letter.wrapped_key).where(
                    models.Letter.id.in_(list(keys)[:: BULK // 100])
                )
            ).all()
        engine.dispose()
        assert len(rows) == 100
        for letter_id, wrapped in rows:
            assert wrapped is not None
            assert client.unwrap_key(wrapped, letter_key_context(letter_id)) == keys[letter_id]
        client.close()
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        for letter in letters:
            custody.AcceptLetter(
                custody_pb2.AcceptLetterRequest(name=letter.name), metadata=as_recipient
            )
            chunks = list(
                custody.DownloadLetterContent(
                    custody_pb2.DownloadLetterContentRequest(name=letter.name),
                    metadata=as_recipient,
                )
            )
            content = [b"".join(c.data for c in chunks if c.part_index == i) for i in (0, 1)]
            assert content == [CONTENT, ANNEX]
