"""A rotation of the secrets key: TOTP seeds, webhook secrets and e-mailed
codes still read under the older key, then `rekey --secrets` moves them to the
new one, resumably, and the older key can go."""

from __future__ import annotations

import dataclasses
import os

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.adapters import at_rest
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.services.rekey import reencrypt_secrets
from lre.server.storage import models
from lre.server.storage.store import Stores
from tests.support.parties import PASSWORD, Enrol
from tests.support.services import KEY, Clock


def test_rotation_then_reencryption_of_secrets(
    database: sessionmaker[DbSession], policy: IdentityPolicy, clock: Clock, enrol: Enrol
) -> None:
    service = IdentityService(Stores(database), policy, clock)
    parties = [enrol() for _ in range(5)]
    code_id, _ = service.credentials.send_email_code(parties[0][0], PASSWORD)
    new = SecretsKeys(os.urandom(32), (KEY.current,))
    rotated = IdentityService(Stores(database), dataclasses.replace(policy, secrets_key=new), clock)
    # Before any re-encryption, the older key still opens the seeds.
    party, totp = parties[1]
    assert rotated.sessions.create(party, PASSWORD, totp.at(clock.now)).token

    seen: list[tuple[str, int, int]] = []
    progress = reencrypt_secrets(
        Stores(database),
        new,
        batch=2,
        report=lambda what, p: seen.append((what, p.examined, p.changed)),
    )
    # 5 seeds, the sign-in code, the 5 enrolment codes proofing e-mailed.
    assert (progress.examined, progress.changed) == (11, 11)
    assert [s for s in seen if s[0] == "TOTP secrets"][-1][1:] == (5, 5)
    with database() as db:
        seeds = db.execute(select(models.Credential.totp_secret)).scalars().all()
        payloads = db.execute(
            select(models.OutboxMessage.payload).where(models.OutboxMessage.kind == "email_code")
        ).scalars()
        (outbox,) = [p for p in payloads if p.get("code_id") == str(code_id)]
    assert all(new.is_current(seed) for seed in seeds if seed is not None)
    code = at_rest.decrypt(SecretsKeys(new.current), bytes.fromhex(outbox["code"]), code_id.bytes)
    assert len(code) == 6
    # Again: nothing left to do.
    again = reencrypt_secrets(Stores(database), new)
    assert (again.examined, again.changed) == (11, 0)
    # The older key gone: every seed still opens.
    only_new = IdentityService(
        Stores(database), dataclasses.replace(policy, secrets_key=SecretsKeys(new.current)), clock
    )
    clock.advance(seconds=60)
    for party, totp in parties[2:]:
        assert only_new.sessions.create(party, PASSWORD, totp.at(clock.now)).token
