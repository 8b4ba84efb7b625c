"""Journal entries no other transaction carries, over a real database and
signer: a process's start with the digest of its settings, and what the
signer shows (down when unreachable; up with its seal and TSA certificates,
journaled again only when they change)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from lre.runtime.config import load
from lre.server.adapters.signer import SignerClient
from lre.server.config import ServerSettings
from lre.server.domain import journal
from lre.server.domain.letters import OutboxKind, OutboxState
from lre.server.domain.log import LogKind
from lre.server.services.journal import SecurityJournal, SignerWatch, settings_digest
from lre.server.storage import models
from tests.support.processes import free_port
from tests.support.world import World


def _entries(world: World, since: int = 0) -> list[dict[str, Any]]:
    with DbSession(world.engine) as db:
        leaves = db.scalars(
            select(models.LogEntry.leaf)
            .where(models.LogEntry.letter_id.is_(None))
            .order_by(models.LogEntry.create_time, models.LogEntry.id)
        )
        found = [json.loads(leaf) for leaf in leaves][since:]
    for leaf in found:
        assert journal.problems(LogKind(leaf["kind"]), leaf) == []
    return found


def test_a_process_start_names_its_version_and_settings(world: World) -> None:
    before = len(_entries(world))
    world.clock.advance(seconds=1)  # after the world's own entries
    settings = load(ServerSettings, "server", {"LRE_SERVER_PROVIDER_NAME": "Prestataire"})
    SecurityJournal(world.stores, world.clock).process_started("work", "1.2.3", settings, "h-7")
    (started,) = _entries(world, before)
    assert started["kind"] == "process_started" and started["subject"] == "processes/h-7"
    assert (started["command"], started["version"]) == ("work", "1.2.3")
    assert started["settingsSha256"] == settings_digest(settings)
    assert started["settingsSha256"] != settings_digest(load(ServerSettings, "server", {}))


def test_the_signer_is_journaled_down_then_up_with_its_certificates(world: World) -> None:
    journal_ = SecurityJournal(world.stores, world.clock)
    before = len(_entries(world))
    world.clock.advance(seconds=1)
    dead = SignerClient(f"127.0.0.1:{free_port()}", timeout_s=1)
    try:
        SignerWatch(journal_, dead, "host-a").look()
    finally:
        dead.close()
    (down,) = _entries(world, before)
    assert (down["kind"], down["subject"], down["observer"]) == ("signer_down", "signer", "host-a")

    world.clock.advance(seconds=1)
    watch = SignerWatch(journal_, world.signer, "host-a")
    watch.look()
    up, *certificates = sorted(_entries(world, before + 1), key=lambda e: e["kind"] != "signer_up")
    assert up["kind"] == "signer_up"
    for purpose in ("seal", "timestamping"):
        (seen,) = [c for c in certificates if c["subject"] == f"signer/{purpose}"]
        leaf_certificate = world.signer.certificate_chain(purpose)[0]
        assert seen["certificateSha256"] == hashlib.sha256(leaf_certificate).hexdigest()
        assert "CN=" in seen["certificateSubject"] and seen["notAfter"].endswith("Z")
    assert len(certificates) == 2
    watch.look()  # nothing changed: nothing journaled
    assert len(_entries(world, before)) == 4


def test_a_later_temporary_bounce_keeps_the_permanent_diagnostic(world: World) -> None:
    letter = world.deposit()
    with world.stores.read() as store:
        (message,), _ = store.outbox.page_for_letter(letter.id, [OutboxKind.LETTER_WAITING], 10, "")
    permanent = "550 5.1.1 unknown user"
    world.decisions.record_bounce(message.id, True, permanent, "operator.lre.internal")
    later = world.decisions.record_bounce(
        message.id, False, "451 try later", "operator.lre.internal"
    )
    assert later.state is OutboxState.BOUNCED
    assert later.last_error == f"bounced: {permanent}"
    with world.stores.read() as store:
        (stored,), _ = store.outbox.page_for_letter(letter.id, [OutboxKind.LETTER_WAITING], 10, "")
    assert stored.last_error == f"bounced: {permanent}"


def test_an_operator_s_bounce_and_hold_are_journaled_with_the_operator(world: World) -> None:
    letter = world.deposit()
    with world.stores.read() as store:
        (message,), _ = store.outbox.page_for_letter(letter.id, [OutboxKind.LETTER_WAITING], 10, "")
    before = len(_entries(world))
    world.clock.advance(seconds=1)
    diagnostic = "550 5.1.1 <courrier@destinataire.example>: unknown user"
    world.decisions.record_bounce(message.id, True, diagnostic, "operator.lre.internal")
    world.clock.advance(seconds=1)
    world.decisions.set_legal_hold(letter.id, True, "operator.lre.internal")
    world.clock.advance(seconds=1)
    world.decisions.set_legal_hold(letter.id, False, "operator.lre.internal")
    bounce, held, released = _entries(world, before)
    assert bounce == {
        "format": "lre-log/1",
        "kind": "bounce_recorded",
        "subject": f"letters/{letter.id}/notifications/{message.id}",
        "eventTime": bounce["eventTime"],
        "actor": "operator.lre.internal",
        "permanent": "true",
        "messageKind": message.kind.value,
    }
    assert [(e["kind"], e["subject"], e["actor"]) for e in (held, released)] == [
        ("legal_hold_set", f"letters/{letter.id}", "operator.lre.internal"),
        ("legal_hold_released", f"letters/{letter.id}", "operator.lre.internal"),
    ]
