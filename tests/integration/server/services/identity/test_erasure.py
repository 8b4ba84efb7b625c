"""Personal data past its retention schedule, or asked to go, over the real
services and signer, on SQLite and PostgreSQL: a recipient erased by the
worker while its letter's evidence still verifies offline (``lre-verify`` on
a bundle made after the erasure) and ``verify-log`` passes, reporting the
party as erased; an erasure request refused with its reason while the law
keeps the data; an insider's erasure behind the journal named."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from lre.server.adapters.at_rest import SecretsKeys
from lre.server.audit.verify import verify_log
from lre.server.domain import identity
from lre.server.domain.corrections import Names
from lre.server.domain.errors import DepositRefused, FailedPrecondition, NotFound
from lre.server.domain.identity import AssuranceLevel, FactorCategory, Party, ProfessionalBasis
from lre.server.domain.letters import EvidenceEvent, PartyKind
from lre.server.domain.records import LetterRecord, WebhookRecord
from lre.server.domain.retention import ErasureRefused, RetentionSchedule
from lre.server.services.custody import DeclaredPart
from lre.server.services.custody.bundles import EvidenceBundles
from lre.server.services.custody.queries import StaffReader
from lre.server.services.events import EventLog
from lre.server.services.identity import NewParty, ProfessionalDecision
from lre.server.services.identity.corrections import CorrectionService
from lre.server.services.identity.erasure import ErasureService
from lre.server.services.rekey import reencrypt_secrets
from lre.server.storage import models
from lre.server.workers.personal_data import PersonalDataEraser
from tests.support.mail import Inbox
from tests.support.processes import BIN
from tests.support.services import KEY
from tests.support.signer import SignerProcess
from tests.support.world import World

SCHEDULE = RetentionSchedule(party_after_last_letter=dt.timedelta(days=400))
FORM = "ab" * 32


def _person(world: World, key: str) -> Party:
    """A natural person proofed by a document check, consenting to the world's sender."""
    person = world.identity.parties.create(
        "gateway",
        key,
        NewParty(
            PartyKind.NATURAL_PERSON,
            False,
            f"{key}@example.org",
            given_name="Élodie",
            family_name="Martin",
            postal_address={"lines": ["1 rue de la Paix"], "postal_code": "75002"},
        ),
    )
    world.identity.proofing.record_document_check(
        person.id, "id-card", "X4RTBPFW4", world.clock.now + dt.timedelta(days=3650), "desk-1"
    )
    consent = world.identity.consents.grant(
        "operator-desk", f"c-{key}", person.id, uuid.UUID(world.session.party_id), "signed", FORM
    )
    assert (consent.actor, consent.form_sha256) == ("operator-desk", FORM)
    return person


def _letter_to(world: World, person: Party, smtp_port: int) -> LetterRecord:
    letter, _ = world.deposits.deposit(
        world.session,
        str(uuid.uuid4()),
        person.id,
        [DeclaredPart("a.pdf", "application/pdf", 5)],
        iter([(0, b"%PDF!")]),
    )
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        world.drain()
    return letter


def _accept(world: World, person: Party, letter: LetterRecord) -> None:
    world.clock.advance(seconds=1)  # the log orders a letter's entries by time
    session = identity.Session(
        party_id=str(person.id),
        level=AssuranceLevel.SUBSTANTIAL,
        factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
        one_time_element=True,
        authenticated_at=world.clock.now,
        expires_at=world.clock.now + dt.timedelta(minutes=30),
    )
    world.decisions.accept(session, letter.id)


def _erased_metric(kind: str) -> float:
    return REGISTRY.get_sample_value("lre_personal_data_erased_total", {"kind": kind}) or 0.0


def test_a_party_past_its_schedule_is_erased_and_its_proofs_still_verify(
    world: World, signer_process: SignerProcess, smtp_port: int, tmp_path: Path
) -> None:
    person = _person(world, "elodie")
    letter = _letter_to(world, person, smtp_port)
    _accept(world, person, letter)
    events = EventLog(world.stores, world.clock, world.signer, "Test provider")
    events.sequence()
    assert events.seal_head() is not None
    erasure = ErasureService(world.stores, SCHEDULE, world.clock)
    eraser = PersonalDataEraser(erasure)

    world.clock.advance(days=399)
    # Dest SA, which never received a letter, is past its year; the person is not.
    assert {k.value: n for k, n in erasure.erase_due(100).items()}.get("party") == 1
    assert world.identity.parties.get(person.id).erase_time is None
    world.clock.advance(days=2)
    kinds = ("party", "identity_record", "outbox")
    before = {kind: _erased_metric(kind) for kind in kinds}
    assert eraser.step()
    # The person's, with its identity record and its enrolment code e-mail.
    assert all(_erased_metric(kind) >= before[kind] + 1 for kind in kinds)

    erased = world.identity.parties.get(person.id)
    assert erased.erase_time == world.clock.now
    assert (erased.given_name, erased.family_name, erased.email, erased.postal_address) == (
        None,
        None,
        "",
        None,
    )
    with world.stores.read() as store:
        (record,), _ = store.proofing.page(person.id, 10, "")
    assert record.details == {} and record.digest_salt is None and record.erase_time is not None
    with pytest.raises(NotFound):  # nothing left to name it in a new letter's evidence
        _letter_to(world, erased, smtp_port)
    # Nor is anything new recorded of it: no proofing, no consent.
    with pytest.raises(NotFound):
        world.identity.proofing.record_document_check(
            person.id, "id-card", "X4RTBPFW4", world.clock.now + dt.timedelta(days=3650), "desk-1"
        )
    with pytest.raises(NotFound):
        world.identity.consents.grant(
            "operator-desk", "c-again", person.id, uuid.UUID(world.session.party_id), "signed", FORM
        )
    with pytest.raises(FailedPrecondition, match="erased"):
        world.identity.parties.set_professional(
            person.id, ProfessionalDecision(True, ProfessionalBasis.OPERATOR, "Kbis", "desk-1")
        )
    assert world.identity.parties.level(person.id) is None  # its records prove nothing now
    exported = json.loads(erasure.export(person.id, "operator-desk"))
    assert exported["party"]["email"] == "" and "Martin" not in json.dumps(exported)

    # verify-log: clean, the party reported erased rather than tampered with.
    events.sequence()
    url = world.engine.url.render_as_string(False)
    report = verify_log(url, signer_process.root_ca)
    assert report.ok, report.findings
    assert report.erased >= 1

    # The letter's evidence, sealed with the name it had, still verifies offline.
    with world.stores.read() as store:
        accepted = [
            e
            for e in store.evidence.of_letter(letter.id)
            if e.event is EvidenceEvent.CONSIGNMENT_ACCEPTANCE
        ]
    assert json.loads(accepted[0].document)["recipient"]["name"] == "Élodie Martin"
    bundles = EvidenceBundles(world.queries, world.proofs, events)
    bundle = bundles.bundle(
        StaffReader("operator-desk", "operator", "GetEvidenceBundle"), letter.id, accepted[0].id
    )
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    pki = signer_process.paths.pki
    provider = tmp_path / "provider.pem"
    provider.write_bytes((pki / "seal.pem").read_bytes() + (pki / "timestamping.pem").read_bytes())
    result = subprocess.run(
        [BIN / "lre-verify", path, "--trust", signer_process.root_ca, "--provider", provider],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "VALID", result.stdout

    # An insider marking another party erased behind the journal is named.
    other = world.identity.parties.create(
        "gateway", "other", NewParty(PartyKind.LEGAL_PERSON, False, "o@o.example", company_name="O")
    )
    with world.engine.begin() as connection:
        connection.execute(
            update(models.Party)
            .where(models.Party.id == other.id)
            .values(erase_time=world.clock.now)
        )
    findings = verify_log(url, signer_process.root_ca).findings
    assert any("erased outside the service" in f for f in findings), findings


def test_an_export_tells_a_recipient_no_more_of_its_letters_than_the_api_does(
    world: World, smtp_port: int
) -> None:
    """Art. 15 gives the party what is held on it, not what the law keeps
    from it: no sender before acceptance (R53-3 I), no deposit refused at
    the door (it never reached the recipient). The sender sees all of its."""
    person = _person(world, "claire")
    waiting = _letter_to(world, person, smtp_port)
    accepted = _letter_to(world, person, smtp_port)
    _accept(world, person, accepted)
    weak = dataclasses.replace(world.session, level=AssuranceLevel.LOW)
    with pytest.raises(DepositRefused):
        world.deposits.deposit(
            weak,
            "refused",
            person.id,
            [DeclaredPart("a.pdf", "application/pdf", 5)],
            iter([(0, b"%PDF!")]),
        )
    with world.stores.read() as store:
        rejected = store.letters.by_request(waiting.sender_id, "refused")
    assert rejected is not None
    erasure = ErasureService(world.stores, SCHEDULE, world.clock)
    recipients = {
        letter["id"]: letter for letter in json.loads(erasure.export(person.id, "desk"))["letters"]
    }
    assert recipients == {
        str(waiting.id): {**recipients[str(waiting.id)], "sender_id": None, "state": "notified"},
        str(accepted.id): {
            **recipients[str(accepted.id)],
            "sender_id": str(accepted.sender_id),
            "state": "accepted",
        },
    }
    senders = json.loads(erasure.export(waiting.sender_id, "desk"))["letters"]
    assert {str(waiting.id), str(accepted.id), str(rejected.id)} <= {x["id"] for x in senders}
    assert all("recipient_id" not in x for x in senders)
    # GetLetter agrees: the refused deposit is not the recipient's to read.
    person_session = dataclasses.replace(world.recipient_session(), party_id=str(person.id))
    with pytest.raises(NotFound):
        world.queries.letter_for(person_session, rejected.id)
    assert world.queries.letter_for(world.session, rejected.id)[0].id == rejected.id


def test_an_erasure_request_is_refused_while_the_law_keeps_the_data(
    world: World, signer_process: SignerProcess, smtp_port: int
) -> None:
    person = _person(world, "camille")
    letter = _letter_to(world, person, smtp_port)
    erasure = ErasureService(world.stores, SCHEDULE, world.clock)
    with pytest.raises(ErasureRefused) as refused:
        erasure.erase_on_request(person.id, "desk-1", "operator")
    assert refused.value.reason == "LETTER_IN_PROGRESS"
    _accept(world, person, letter)
    world.clock.advance(days=200)
    with pytest.raises(ErasureRefused) as refused:
        erasure.erase_on_request(person.id, "desk-1", "operator")
    assert refused.value.reason == "EVIDENCE_UNDER_RETENTION"
    assert world.identity.parties.get(person.id).erase_time is None
    world.clock.advance(days=166)
    counts = erasure.erase_on_request(person.id, "desk-1", "operator")
    assert {k.value: n for k, n in counts.items()}["party"] == 1
    assert world.identity.parties.get(person.id).email == ""
    # Erased stays erased: no correction writes names back.
    corrections = CorrectionService(world.stores, world.signer.seal, "Test provider", world.clock)
    with pytest.raises(FailedPrecondition, match="erased"):
        corrections.correct(person.id, Names("Marie", "Martin", None), "court order", "desk", "")
    assert not world.identity.parties.get(person.id).family_name
    report = verify_log(world.engine.url.render_as_string(False), signer_process.root_ca)
    assert report.ok and report.erased == 1, report.findings


def test_an_erased_party_s_webhooks_end_with_their_address_and_key(world: World) -> None:
    person = _person(world, "dominique")
    now = world.clock.now
    with world.stores.begin() as store:
        for n, deleted in enumerate((None, now)):
            store.webhooks.add(
                WebhookRecord(
                    id=uuid.uuid4(),
                    owner_id=person.id,
                    url=f"https://hooks.example.org/dominique.martin/{n}",
                    request_id=f"hook-{n}",
                    create_time=now,
                    delete_time=deleted,
                    secret_ciphertext=b"sealed key",
                    cursor=0,
                    attempts=1,
                    next_attempt_time=now,
                    last_error="refused by hooks.example.org",
                )
            )
    world.clock.advance(days=1)
    erasure = ErasureService(world.stores, SCHEDULE, world.clock)
    counts = erasure.erase_on_request(person.id, "desk-1", "operator")
    assert {k.value: n for k, n in counts.items()}["webhook"] == 2
    with world.stores.read() as store:
        assert store.webhooks.page_for(person.id, 10, "") == ([], "")
        hooks = [store.webhooks.by_request(person.id, f"hook-{n}") for n in range(2)]
    for hook, deleted in zip(hooks, (world.clock.now, now), strict=True):
        assert hook is not None
        assert (hook.url, hook.secret_ciphertext, hook.last_error) == ("", b"", None)
        assert hook.delete_time == deleted
        assert hook.owner_id == person.id
    # A rotation of the secrets key passes over the erased keys.
    rotated = reencrypt_secrets(world.stores, SecretsKeys(os.urandom(32), (KEY.current,)))
    assert rotated.changed == rotated.examined


def test_the_schedule_keeps_proofs_a_year_at_least() -> None:
    with pytest.raises(ValueError, match="at least a year"):
        dataclasses.replace(SCHEDULE, party_after_last_letter=dt.timedelta(days=300))
