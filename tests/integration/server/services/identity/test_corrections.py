"""Name corrections over the real services and signer, on SQLite and
PostgreSQL: the correction sealed and journaled, later proofs naming it,
`verify-log` reading earlier proofs against the former name, and an insider's
correction written behind the journal, or changed, named."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from lre.server.audit.verify import verify_log
from lre.server.domain.corrections import Names
from lre.server.domain.errors import InvalidArgument
from lre.server.domain.letters import EvidenceEvent
from lre.server.services.identity.corrections import CorrectionService
from tests.support.signer import SignerProcess
from tests.support.world import World


def _deposit_document(world: World, letter_id: object) -> dict[str, object]:
    with world.stores.read() as store:
        (evidence,) = [
            e
            for e in store.evidence.of_letter(letter_id)  # type: ignore[arg-type]
            if e.event is EvidenceEvent.SUBMISSION_ACCEPTANCE
        ]
    document: dict[str, object] = json.loads(evidence.document)
    return document


def test_a_correction_is_sealed_logged_named_by_later_proofs_and_verify_log_follows_it(
    world: World, signer_process: SignerProcess
) -> None:
    corrections = CorrectionService(world.stores, world.signer.seal, "Test provider", world.clock)
    before = world.deposit()
    world.clock.advance(seconds=1)
    with pytest.raises(InvalidArgument):  # a company is corrected by its company name
        corrections.correct(world.recipient.id, Names(None, None, ""), "Kbis", "desk", "")
    fix = corrections.correct(
        world.recipient.id, Names(None, None, "Destinataire SA"), "Kbis extract", "desk-2", "op"
    )
    assert fix.before["companyName"] == "Dest SA" and fix.after["companyName"] == "Destinataire SA"
    assert json.loads(fix.document)["basis"] == "Kbis extract" and fix.seal
    assert corrections.list(world.recipient.id) == [fix]
    world.clock.advance(seconds=1)
    after = world.deposit()

    old = _deposit_document(world, before.id)["recipient"]
    new = _deposit_document(world, after.id)["recipient"]
    assert isinstance(old, dict) and isinstance(new, dict)
    assert old["name"] == "Dest SA" and "nameCorrection" not in old
    assert new["name"] == "Destinataire SA"
    assert new["nameCorrection"]["correction"] == fix.name

    url = world.engine.url.render_as_string(False)
    report = verify_log(url, signer_process.root_ca)
    assert report.ok, report.findings

    # An insider rewriting the history so that the old proof looks forged, or
    # adding a correction the journal never saw: both named.
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE party_corrections SET before = :b"),
            {"b": json.dumps({"givenName": None, "familyName": None, "companyName": "Autre SA"})},
        )
    findings = verify_log(url, signer_process.root_ca).findings
    assert any("is not the correction journaled" in f for f in findings), findings
    assert any("does not match the letter" in f for f in findings), findings
