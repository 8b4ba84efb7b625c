"""`lre-server export` and `verify-export`: an archive of a period, written
from a real database and signer, verifies with no database; a corrupted or
forged file, and an export cut short, are named."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from lre.server.__main__ import main
from lre.server.audit import archive
from lre.server.domain import log as domain_log
from lre.server.domain.letters import PartyKind
from lre.server.domain.retention import RetentionSchedule
from lre.server.services.events import EventLog
from lre.server.services.identity import NewParty
from lre.server.services.identity.erasure import ErasureService
from tests.support.signer import SignerProcess
from tests.support.world import World


def _period(world: World, signer_process: SignerProcess) -> tuple[dt.datetime, dt.datetime]:
    """Six letters over two sealed heads (one on legal hold); the period is
    three deposits and the hold (its entry and its journal entry), all under
    the first head (the second is the latest: the archive proves it extends
    the first)."""
    events = EventLog(world.stores, world.clock, world.signer, "Test provider")
    start = end = world.clock.now
    for number in range(6):
        letter = world.deposit()
        if number == 1:
            start = world.clock.now
            world.decisions.set_legal_hold(letter.id, True)
        if number == 3:
            end = world.clock.now + dt.timedelta(microseconds=1)
        world.clock.advance(seconds=1)
        if number == 3:
            events.sequence()
            assert events.seal_head() is not None
    events.sequence()
    assert events.seal_head() is not None
    return start, end


def test_an_export_verifies_without_the_database_and_names_corruption(
    world: World, signer_process: SignerProcess, tmp_path: Path
) -> None:
    start, end = _period(world, signer_process)
    out = tmp_path / "archive"
    manifest = archive.export(world.engine, start, end, out, signer_process.root_ca)
    # 3 deposits, the hold, and the journal's entry naming who set it.
    assert (manifest["entries"], manifest["evidence"], manifest["journal"]) == (5, 3, 1)
    assert (manifest["head"], manifest["latestHead"]) == (1, 2)
    world.close()  # nothing below needs the database
    report = archive.verify_export(out, signer_process.root_ca)
    assert report.ok, report.findings
    assert (report.entries, report.evidence, report.journal) == (5, 3, 1)

    (document,) = [p for p in (out / "evidence").glob("*.json")][:1]
    original = document.read_bytes()
    document.write_bytes(original.replace(b"Dest SA", b"Dest SB"))
    findings = archive.verify_export(out, signer_process.root_ca).findings
    name = document.relative_to(out).as_posix()
    evidence_id = document.stem
    assert f"{name}: its SHA-256 is not the manifest's (corrupted or changed)" in findings
    assert any(
        f.startswith(f"evidence {evidence_id}") and "not the one the log holds" in f
        for f in findings
    )
    assert any(
        f.startswith(f"evidence {evidence_id}") and "seal does not cover its document" in f
        for f in findings
    )
    document.write_bytes(original)

    # A forger who also rewrites the manifest: the leaf no longer reaches the sealed root.
    entries = out / "entries.jsonl"
    lines = entries.read_bytes().splitlines()
    record = json.loads(lines[0])
    leaf = json.loads(base64.b64decode(record["leaf"]))
    leaf["eventTime"] = "2020-01-01T00:00:00.000000Z"
    record["leaf"] = base64.b64encode(json.dumps(leaf).encode()).decode()
    lines[0] = json.dumps(record).encode()
    entries.write_bytes(b"\n".join(lines) + b"\n")
    manifest_file = out / archive.MANIFEST
    forged = json.loads(manifest_file.read_text())
    forged["files"]["entries.jsonl"] = hashlib.sha256(entries.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(forged))
    assert archive.verify_export(out, signer_process.root_ca).findings == [
        f"entry {record['index']}: not proven to be in the sealed head (changed)"
    ]

    # A journal entry given a field its kind does not have (an address, here).
    lines = entries.read_bytes().splitlines()
    (at,) = [i for i, r in enumerate(lines) if b"kind" in base64.b64decode(json.loads(r)["leaf"])]
    journaled = json.loads(lines[at])
    leaf = json.loads(base64.b64decode(journaled["leaf"])) | {"email": "someone@example.org"}
    journaled["leaf"] = base64.b64encode(json.dumps(leaf).encode()).decode()
    lines[at] = json.dumps(journaled).encode()
    entries.write_bytes(b"\n".join(lines) + b"\n")
    forged["files"]["entries.jsonl"] = hashlib.sha256(entries.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(forged))
    index = journaled["index"]
    assert {
        f"entry {index}: not proven to be in the sealed head (changed)",
        f"entry {index}: a legal_hold_set entry that carries email, which its kind does not have",
    } <= set(archive.verify_export(out, signer_process.root_ca).findings)

    consistency = out / "consistency.json"
    proven = json.loads(consistency.read_text())
    proven["hashes"][0] = "00" * 32
    consistency.write_text(json.dumps(proven))
    forged["files"]["consistency.json"] = hashlib.sha256(consistency.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(forged))
    assert "tree head 2 is not proven to extend tree head 1" in (
        archive.verify_export(out, signer_process.root_ca).findings
    )

    manifest_file.write_text("{")
    assert archive.verify_export(out, signer_process.root_ca).findings == [
        "manifest.json is malformed (corrupted)"
    ]


def test_an_export_cut_short_is_named(
    world: World, signer_process: SignerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start, end = _period(world, signer_process)
    out = tmp_path / "archive"

    def crash(*_: object) -> list[bytes]:
        raise OSError("disk full")

    monkeypatch.setattr(domain_log, "consistency_path", crash)
    with pytest.raises(OSError):
        archive.export(world.engine, start, end, out, signer_process.root_ca)
    assert (tmp_path / "archive.partial" / "entries.jsonl").exists()
    assert archive.verify_export(out, signer_process.root_ca).findings == [
        "the export was interrupted: archive.partial is there, archive is not complete"
    ]


def test_the_commands(
    world: World,
    signer_process: SignerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start, end = _period(world, signer_process)
    monkeypatch.setenv("LRE_SERVER_DATABASE_URL", world.engine.url.render_as_string(False))
    monkeypatch.setenv("LRE_SERVER_SEAL_TRUST_ANCHORS_FILE", str(signer_process.root_ca))
    out = tmp_path / "archive"
    period = ["--from", start.isoformat(), "--to", end.isoformat()]
    assert main(["export", *period, str(out), "--progress-every", "1e-9"]) == 0
    # A progress line per entry written (with so short an interval), on stderr.
    progress = capsys.readouterr().err.splitlines()
    assert progress[-1].startswith("export: 5 entries, 3 evidence written ("), progress
    assert main(["verify-export", str(out)]) == 0
    assert "export verified: 5 entries, 3 evidence, 1 journal entries" in capsys.readouterr().out
    assert main(["export", *period, str(out)]) == 1  # never over an archive
    assert main(["export", "--from", "yesterday", "--to", end.isoformat(), str(out)]) == 2
    seal = next((out / "heads").glob("*.p7m"))
    seal.write_bytes(seal.read_bytes()[:-1] + b"\0")
    assert main(["verify-export", str(out)]) == 1
    assert "its SHA-256 is not the manifest's" in capsys.readouterr().out


def test_an_export_carries_identity_records_and_consents_and_says_which_were_erased(
    world: World, signer_process: SignerProcess, tmp_path: Path
) -> None:
    """The termination plan's archive (eIDAS 24(2)(i)): each identity record
    and consent the period's journal binds, checked against its entry; a
    record erased before the export is listed as erased, not missing."""
    start = world.clock.now
    people = []
    for key in ("kept", "gone"):
        party = world.identity.parties.create(
            "gateway",
            key,
            NewParty(
                PartyKind.NATURAL_PERSON,
                False,
                f"{key}@example.org",
                given_name="A",
                family_name=key,
            ),
        )
        world.identity.proofing.record_document_check(
            party.id, "id-card", f"N-{key}", world.clock.now + dt.timedelta(days=900), "desk-1"
        )
        people.append(party)
        world.clock.advance(seconds=1)
    consent = world.identity.consents.grant(
        "desk", "c-1", people[0].id, world.recipient.id, "signed-form", "cd" * 32
    )
    ErasureService(world.stores, RetentionSchedule(), world.clock).erase_on_request(
        people[1].id, "desk-1", "operator"
    )
    events = EventLog(world.stores, world.clock, world.signer, "Test provider")
    events.sequence()
    assert events.seal_head() is not None
    out = tmp_path / "archive"
    manifest = archive.export(
        world.engine, start, world.clock.now + dt.timedelta(seconds=1), out, signer_process.root_ca
    )
    assert (manifest["identityRecords"], manifest["consents"]) == (1, 1)
    assert len(manifest["erasedIdentityRecords"]) == 1
    report = archive.verify_export(out, signer_process.root_ca)
    assert report.ok, report.findings
    assert (report.identity_records, report.consents, report.erased) == (1, 1, 1)
    archived = json.loads((out / "consents" / f"{consent.id}.json").read_text())
    assert (archived["actor"], archived["formSha256"]) == ("desk", "cd" * 32)

    # A record or consent changed in the archive no longer matches its entry.
    (record,) = (out / "identity-records").glob("*.json")
    changed = json.loads(record.read_text())
    changed["content"]["details"]["document_type"] = "passport"
    record.write_text(json.dumps(changed))
    consent_file = out / "consents" / f"{consent.id}.json"
    consent_file.write_text(consent_file.read_text().replace("signed-form", "checkbox"))
    findings = archive.verify_export(out, signer_process.root_ca).findings
    assert any("not the record journaled" in f for f in findings), findings
    assert any("not the consent journaled" in f for f in findings), findings
