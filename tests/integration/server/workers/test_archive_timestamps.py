"""The archive timestamp worker over real evidence (deposits sealed by the
signer process), SQLite and PostgreSQL: the backfill in bounded batches,
resumed where it stopped, a renewal as a new version whose PDF is the one
served, nothing renewed again while it would not extend the coverage (a
sunset that the TSA's algorithms do not outlive), then renewed once it is lifted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from lre.runtime import archival
from lre.server.audit import archive as archive_export
from lre.server.audit.cli import verify_log_command
from lre.server.audit.reading import Report
from lre.server.audit.verify import verify_log
from lre.server.bootstrap.archive import build_archive
from lre.server.config import ServerSettings
from lre.server.domain.letters import EvidenceEvent
from lre.server.services.events import EventLog
from lre.server.storage import db, models
from lre.server.workers.archive_timestamps import ArchiveTimestamps
from tests.support.signer import SignerProcess
from tests.support.world import World


def _coverage(world: World) -> dict[object, tuple[dt.datetime, int]]:
    with db.sessions(world.engine)() as session:
        rows = session.execute(select(models.EvidenceArchiveCoverage)).scalars()
        return {r.evidence_id: (r.covered_until, r.archive_timestamps) for r in rows}


def _evidence_ids(world: World) -> list[object]:
    with db.sessions(world.engine)() as session:
        return list(session.execute(select(models.Evidence.id)).scalars())


def test_backfill_in_batches_renews_each_once_and_serves_the_renewed_pdf(
    world: World, signer_process: SignerProcess
) -> None:
    letters = [world.deposit() for _ in range(3)]
    with world.stores.read() as store:
        first = store.evidence.of_letter(letters[0].id)[0]
        stored = store.evidence.get(first.id)
    assert first.event is EvidenceEvent.SUBMISSION_ACCEPTANCE and stored is not None
    world.proofs.pdf(stored)  # the PDF of one evidence is stored before the renewal
    world.proofs.flush()
    settings = ServerSettings(
        # Everything due: the development TSA certificate ends in 825 days.
        archive_renew_days=900,
        archive_batch=2,
        seal_trust_anchors_file=signer_process.root_ca,
    )
    worker = ArchiveTimestamps(build_archive(settings, world.stores, world.signer))
    evidence = _evidence_ids(world)
    assert len(evidence) >= 3

    assert worker.step()  # two looked at and renewed; the rest wait for the next step
    coverage = _coverage(world)
    assert len(coverage) == 2 and all(n == 1 for _, n in coverage.values())
    steps = 1
    while worker.step():
        steps += 1
        assert steps < 10
    coverage = _coverage(world)
    assert set(coverage) == set(evidence)
    assert all(n == 1 for _, n in coverage.values()), coverage  # once: a second would not extend
    assert not worker.step()

    with world.stores.read() as store:
        served = store.evidence.get(first.id)
        archived = store.archive.archived_seal(first.id)
    assert served is not None and served.proof_pdf is not None and archived is not None
    reader = PdfFileReader(io.BytesIO(served.proof_pdf))
    assert len(reader.embedded_timestamp_signatures) == 1  # the renewed version is served
    with db.sessions(world.engine)() as session:
        original = session.get(models.EvidenceProof, first.id)
    assert original is not None and served.proof_pdf.startswith(original.pdf)  # a revision added
    assert archival.same_signature(first.seal, archived)
    assert len(archival.stamps(archived)) == 1


def test_a_sunset_the_tsa_does_not_outlive_is_recorded_but_not_renewed_in_a_loop(
    world: World, signer_process: SignerProcess
) -> None:
    world.deposit()
    sunset = world.clock.now + dt.timedelta(days=30)
    settings = ServerSettings(
        archive_renew_days=90,
        archive_sunset=sunset.date().isoformat(),
        seal_trust_anchors_file=signer_process.root_ca,
    )
    worker = ArchiveTimestamps(build_archive(settings, world.stores, world.signer))
    assert worker.step()
    coverage = _coverage(world)
    # B-LTA at once (one archive timestamp), covered until the sunset.
    assert coverage and all(
        until == dt.datetime.combine(sunset.date(), dt.time(), dt.UTC) and n == 1
        for until, n in coverage.values()
    )
    assert not worker.step()
    # The sunset lifted (the TSA moved to other algorithms): now they are renewed.
    later = dataclasses.replace(settings, archive_sunset="")
    assert ArchiveTimestamps(build_archive(later, world.stores, world.signer)).step()
    assert all(n == 2 for _, n in _coverage(world).values())


def _archive_findings(report: Report) -> list[str]:
    return [f for f in report.findings if "archive" in f or "compromised" in f or "expired" in f]


def test_verify_log_checks_the_chains_and_refuses_what_a_compromised_key_sealed(
    world: World, signer_process: SignerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.deposit()
    settings = ServerSettings(seal_trust_anchors_file=signer_process.root_ca)
    worker = ArchiveTimestamps(build_archive(settings, world.stores, world.signer))
    while worker.step():
        pass
    url = world.engine.url.render_as_string(hide_password=False)
    report = verify_log(url, signer_process.root_ca)
    assert _archive_findings(report) == [] and report.archived == len(_evidence_ids(world))
    assert any("proven to exist at its signature timestamp" in n for n in report.notes)

    seal = world.signer.certificate_chain("seal")[0]
    keys = tmp_path / "compromised.json"
    since = world.clock.now - dt.timedelta(days=1)
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "certificateSha256": hashlib.sha256(seal).hexdigest(),
                        "compromisedAt": since.isoformat(),
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    refused = verify_log(url, signer_process.root_ca, compromised=keys)
    found = _archive_findings(refused)
    assert len(found) == report.archived and all(
        "after the seal key was declared compromised" in f for f in found
    ), found
    # The nightly verify-log takes the declaration from its settings.
    nightly = ServerSettings(
        database_url=url,
        seal_trust_anchors_file=signer_process.root_ca,
        compromised_keys_file=keys,
    )
    capsys.readouterr()
    assert verify_log_command(nightly, None, 60.0) == 1
    assert "after the seal key was declared compromised" in capsys.readouterr().out

    # A renewed seal that lost an archive timestamp no longer passes.
    with db.sessions(world.engine).begin() as session:
        row = session.execute(select(models.EvidenceArchiveVersion)).scalars().first()
        assert row is not None
        original = session.get(models.Evidence, row.evidence_id)
        assert original is not None
        row.seal = original.seal
    changed = verify_log(url, signer_process.root_ca)
    assert any("archived seal version 1 holds 0 archive timestamps" in f for f in changed.findings)


def test_verify_export_names_the_instant_each_renewed_evidence_is_proven(
    world: World, signer_process: SignerProcess, tmp_path: Path
) -> None:
    events = EventLog(world.stores, world.clock, world.signer, "Test provider")
    start = world.clock.now
    letters = [world.deposit() for _ in range(2)]
    world.clock.advance(seconds=1)
    events.sequence()
    assert events.seal_head() is not None
    settings = ServerSettings(seal_trust_anchors_file=signer_process.root_ca)
    worker = ArchiveTimestamps(build_archive(settings, world.stores, world.signer))
    while worker.step():
        pass
    out = tmp_path / "export"
    archive_export.export(world.engine, start, world.clock.now, out, signer_process.root_ca)
    renewed = sorted((out / "evidence").glob("*.archive.p7m"))
    assert len(renewed) == len(letters)
    report = archive_export.verify_export(out, signer_process.root_ca)
    assert report.ok, report.findings
    assert len(report.proven) == len(letters)
    assert all("proven to exist at" in p and "B-LTA: 1 archive" in p for p in report.proven)

    # One evidence's renewal swapped for another's: named, beside the manifest's finding.
    renewed[0].write_bytes(renewed[1].read_bytes())
    findings = archive_export.verify_export(out, signer_process.root_ca).findings
    assert any("its archived seal is not its seal extended" in f for f in findings), findings


def test_a_proof_made_after_the_renewal_is_timestamped_next_and_verify_log_checks_it(
    world: World, signer_process: SignerProcess
) -> None:
    letter = world.deposit()
    settings = ServerSettings(seal_trust_anchors_file=signer_process.root_ca)
    worker = ArchiveTimestamps(build_archive(settings, world.stores, world.signer))
    while worker.step():
        pass
    with world.stores.read() as store:
        first = store.evidence.of_letter(letter.id)[0]
        stored = store.evidence.get(first.id)
    assert stored is not None and stored.proof_pdf is None
    world.proofs.pdf(stored)  # first needed after the seal's renewal: B-LT as made
    world.proofs.flush()
    url = world.engine.url.render_as_string(hide_password=False)
    before = verify_log(url, signer_process.root_ca)
    assert any("0 renewed PDF proofs (B-LTA) checked; 1 stored" in n for n in before.notes)

    assert worker.step()  # due at once: the seal once more, the PDF its first document timestamp
    assert _coverage(world)[first.id][1] == 2
    assert not worker.step()
    with world.stores.read() as store:
        served = store.evidence.get(first.id)
    assert served is not None and served.proof_pdf is not None
    reader = PdfFileReader(io.BytesIO(served.proof_pdf))
    assert len(reader.embedded_timestamp_signatures) == 1
    report = verify_log(url, signer_process.root_ca)
    assert report.findings == [], report.findings
    assert any("1 renewed PDF proofs (B-LTA) checked; 0 stored" in n for n in report.notes)

    # A renewed PDF whose timestamped revision was changed, then one that is
    # not the stored proof extended: each named.
    with db.sessions(world.engine).begin() as session:
        row = session.get(models.EvidenceArchiveVersion, (first.id, 2))
        assert row is not None and row.pdf is not None
        renewed = row.pdf
        at = renewed.rindex(b"ArchiveTimestamp1")
        row.pdf = renewed[:at] + b"ArchiveTimestamp9" + renewed[at + 17 :]
    found = verify_log(url, signer_process.root_ca).findings
    assert (
        f"evidence {first.id}: its renewed PDF proof has document timestamp 1 over other"
        " bytes than it covers" in found
    ), found
    with db.sessions(world.engine).begin() as session:
        row = session.get(models.EvidenceArchiveVersion, (first.id, 2))
        assert row is not None
        row.pdf = renewed[:200] + bytes([renewed[200] ^ 1]) + renewed[201:]
    found = verify_log(url, signer_process.root_ca).findings
    assert any("its renewed PDF proof is not its stored proof extended" in f for f in found)
    # One whose end was cut off (no cross-reference left to read): a finding, the run goes on.
    with db.sessions(world.engine).begin() as session:
        row = session.get(models.EvidenceArchiveVersion, (first.id, 2))
        assert row is not None and row.pdf is not None
        original = session.get(models.EvidenceProof, first.id)
        assert original is not None
        row.pdf = original.pdf + b"\n%%EOF junk" * 3
    found = verify_log(url, signer_process.root_ca).findings
    assert f"evidence {first.id}: its renewed PDF proof cannot be read (PdfReadError)" in found
