"""Re-encryption after a key rotation (`lre-server rekey`).

Content keys: the signer re-wraps them under its current wrap key
(``RewrapKeys``); the content itself, encrypted under each content key, is
not touched. Secrets at rest (TOTP seeds, webhook secrets, e-mailed codes
still in the outbox): re-encrypted here under the current secrets key.

Both go in batches, each committed on its own, so that a run interrupted at
any point is resumed by running it again: what is already current is
recognised by its header and skipped without a call. A row is replaced only
if it still holds what was read (compare and set), so a concurrent purge or
rotation is never overwritten.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from lre.server.adapters import at_rest
from lre.server.adapters.signer import WRAPPED_HEADER_BYTES, SignerClient, letter_key_context
from lre.server.domain.letters import OutboxState
from lre.server.storage import models

# The most keys one RewrapKeys call takes (the signer's MAX_KEYS_PER_CALL).
MAX_KEYS_PER_CALL = 256


@dataclass
class Progress:
    examined: int = 0
    changed: int = 0


Report = Callable[[str, Progress], None]


def _current_header(signer: SignerClient) -> bytes:
    """The header (format and key id) of what the signer wraps today: a
    throwaway key, wrapped and forgotten, shows it."""
    return signer.wrap_key(os.urandom(32), b"rekey/probe")[:WRAPPED_HEADER_BYTES]


def rewrap_content_keys(
    sessions: sessionmaker[Session],
    signer: SignerClient,
    batch: int = MAX_KEYS_PER_CALL,
    report: Report | None = None,
) -> Progress:
    """Every letter's content key under the signer's current wrap key."""
    batch = max(1, min(batch, MAX_KEYS_PER_CALL))
    current = _current_header(signer)
    progress = Progress()
    after: uuid.UUID | None = None
    while True:
        query = select(models.Letter.id, models.Letter.wrapped_key).order_by(models.Letter.id)
        if after is not None:
            query = query.where(models.Letter.id > after)
        with sessions() as db:
            rows = db.execute(query.limit(batch)).all()
        if not rows:
            return progress
        after = rows[-1].id
        progress.examined += len(rows)
        stale = [
            (row.id, row.wrapped_key)
            for row in rows
            if row.wrapped_key is not None and not row.wrapped_key.startswith(current)
        ]
        if stale:
            rewrapped = signer.rewrap_keys([(w, letter_key_context(i)) for i, w in stale])
            with sessions.begin() as db:
                for (letter_id, old), (new, changed) in zip(stale, rewrapped, strict=True):
                    if changed:
                        result = db.execute(
                            update(models.Letter)
                            .where(models.Letter.id == letter_id)
                            .where(models.Letter.wrapped_key == old)
                            .values(wrapped_key=new)
                        )
                        progress.changed += result.rowcount  # type: ignore[attr-defined]
        if report is not None:
            report("content keys", progress)


def reencrypt_secrets(
    sessions: sessionmaker[Session],
    keys: at_rest.SecretsKeys,
    batch: int = 500,
    report: Report | None = None,
) -> Progress:
    """TOTP seeds, webhook secrets and pending e-mailed codes under the current
    secrets key."""
    progress = Progress()
    credentials = models.Credential
    _reencrypt_column(
        sessions,
        keys,
        batch,
        progress,
        report,
        "TOTP secrets",
        credentials.party_id,
        credentials.totp_secret,
    )
    webhooks = models.Webhook
    _reencrypt_column(
        sessions,
        keys,
        batch,
        progress,
        report,
        "webhook secrets",
        webhooks.id,
        webhooks.secret_ciphertext,
    )
    _email_codes(sessions, keys, batch, progress, report)
    return progress


def _reencrypt_column(
    sessions: sessionmaker[Session],
    keys: at_rest.SecretsKeys,
    batch: int,
    progress: Progress,
    report: Report | None,
    label: str,
    key: InstrumentedAttribute[uuid.UUID],
    blob: InstrumentedAttribute[bytes | None] | InstrumentedAttribute[bytes],
) -> None:
    """One encrypted column, in batches by its row's id (bound into the
    ciphertext as associated data, so the same id re-encrypts it)."""
    after: uuid.UUID | None = None
    while True:
        query = select(key, blob).where(blob.is_not(None)).order_by(key).limit(batch)
        if after is not None:
            query = query.where(key > after)
        with sessions.begin() as db:
            rows = db.execute(query).all()
            if not rows:
                return
            after = rows[-1][0]
            progress.examined += len(rows)
            for row_id, old in rows:
                assert old is not None  # selected so
                new = at_rest.reencrypt(keys, old, row_id.bytes)
                if new is not None:
                    db.execute(
                        update(key.class_).where(key == row_id, blob == old).values({blob: new})
                    )
                    progress.changed += 1
        if report is not None:
            report(label, progress)


def _email_codes(
    sessions: sessionmaker[Session],
    keys: at_rest.SecretsKeys,
    batch: int,
    progress: Progress,
    report: Report | None,
) -> None:
    """E-mailed codes wait encrypted in the outbox until sent (then the
    dispatcher drops them from the payload); they live minutes."""
    table = models.OutboxMessage
    with sessions.begin() as db:
        rows = db.execute(
            select(table.id, table.payload)
            # Those being sent too: a worker that died sending one leaves it
            # SENDING, and the next sends it again, with the current keys.
            .where(
                table.kind == "email_code",
                table.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for outbox_id, payload in rows:
            if "code" not in payload:
                continue
            progress.examined += 1
            row = uuid.UUID(payload["code_id"]).bytes
            new = at_rest.reencrypt(keys, bytes.fromhex(payload["code"]), row)
            if new is not None:
                db.execute(
                    update(table)
                    .where(table.id == outbox_id)
                    .values(payload={**payload, "code": new.hex()})
                )
                progress.changed += 1
    if report is not None:
        report("e-mailed codes", progress)
