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

from lre.server.adapters import at_rest
from lre.server.adapters.signer import WRAPPED_HEADER_BYTES, SignerClient, letter_key_context
from lre.server.storage.keys import Secret
from lre.server.storage.store import Stores

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
    stores: Stores,
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
        with stores.read() as store:
            rows = store.keys.wrapped_keys(after, batch)
        if not rows:
            return progress
        after = rows[-1][0]
        progress.examined += len(rows)
        stale = [
            (letter_id, wrapped)
            for letter_id, wrapped in rows
            if wrapped is not None and not wrapped.startswith(current)
        ]
        if stale:
            rewrapped = signer.rewrap_keys([(w, letter_key_context(i)) for i, w in stale])
            with stores.begin() as store:
                for (letter_id, old), (new, changed) in zip(stale, rewrapped, strict=True):
                    if changed and store.keys.replace_wrapped_key(letter_id, old, new):
                        progress.changed += 1
        if report is not None:
            report("content keys", progress)


def reencrypt_secrets(
    stores: Stores,
    keys: at_rest.SecretsKeys,
    batch: int = 500,
    report: Report | None = None,
) -> Progress:
    """TOTP seeds, webhook secrets and pending e-mailed codes under the current
    secrets key."""
    progress = Progress()
    for secret in (Secret.TOTP, Secret.WEBHOOK):
        _reencrypt(stores, keys, batch, progress, report, secret)
    _email_codes(stores, keys, progress, report)
    return progress


def _reencrypt(
    stores: Stores,
    keys: at_rest.SecretsKeys,
    batch: int,
    progress: Progress,
    report: Report | None,
    secret: Secret,
) -> None:
    """One encrypted column, in batches by its row's id (bound into the
    ciphertext as associated data, so the same id re-encrypts it)."""
    after: uuid.UUID | None = None
    while True:
        with stores.begin() as store:
            rows = store.keys.secrets(secret, after, batch)
            if not rows:
                return
            after = rows[-1][0]
            progress.examined += len(rows)
            for row_id, old in rows:
                new = at_rest.reencrypt(keys, old, row_id.bytes)
                if new is not None:
                    store.keys.replace_secret(secret, row_id, old, new)
                    progress.changed += 1
        if report is not None:
            report(secret.value, progress)


def _email_codes(
    stores: Stores,
    keys: at_rest.SecretsKeys,
    progress: Progress,
    report: Report | None,
) -> None:
    """E-mailed codes wait encrypted in the outbox until sent (then the
    dispatcher drops them from the payload); they live minutes."""
    with stores.begin() as store:
        for outbox_id, payload in store.keys.email_codes():
            if "code" not in payload:
                continue
            progress.examined += 1
            row = uuid.UUID(payload["code_id"]).bytes
            new = at_rest.reencrypt(keys, bytes.fromhex(payload["code"]), row)
            if new is not None:
                store.keys.replace_payload(outbox_id, {**payload, "code": new.hex()})
                progress.changed += 1
    if report is not None:
        report("e-mailed codes", progress)
