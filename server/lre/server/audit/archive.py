"""`lre-server export` and `verify-export`: a period of the log as a
self-contained directory an auditor (or a successor provider, at termination)
checks with no database and none of our code but this file and the domain.

The archive holds every entry dated in the period with its leaf and its
RFC 9162 inclusion proof in the first sealed head that covers them all; that
head and the latest one with their documents and seals, and the consistency
proof between them; each entry's evidence document and seal; the identity
records and consents the journal's entries bind (``lre.server.audit.personal``);
the trust anchors; and a manifest with the SHA-256 of every file, written last. It is
built under ``OUT.partial`` and renamed to ``OUT`` only when complete, so an
interrupted export is never mistaken for one."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from lre.server.audit import archived
from lre.server.audit.journal import leaf_problems
from lre.server.audit.personal import Checked, Exported, check_entry, export_entry
from lre.server.audit.reading import Progress
from lre.server.audit.seals import Provider, SealChecker
from lre.server.domain import log
from lre.server.storage import db, models
from lre.server.storage.archive import ArchiveRepository
from lre.server.storage.log import LogRepository

FORMAT = "lre-export/1"
MANIFEST = "manifest.json"


class ExportError(Exception):
    """The period cannot be exported (nothing sealed covers it yet)."""


def export(
    engine: Engine,
    start: dt.datetime,
    end: dt.datetime,
    out: Path,
    anchors: Path | None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Writes the archive of entries dated in [start, end); returns its manifest."""
    if out.exists():
        raise ExportError(f"{out} exists")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "evidence").mkdir(parents=True)
    (partial / "heads").mkdir()
    sessions = db.sessions(engine)
    with sessions() as session:
        latest = session.scalar(
            select(models.TreeHead).order_by(models.TreeHead.tree_size.desc()).limit(1)
        )
        if latest is None:
            raise ExportError("no sealed tree head yet: seal one first (SealTreeHead)")
        in_period = (
            select(models.LogEntry, models.Evidence)
            .outerjoin(models.Evidence, models.Evidence.id == models.LogEntry.evidence_id)
            .where(models.LogEntry.event_time >= start, models.LogEntry.event_time < end)
            .where(models.LogEntry.seq.is_not(None))
            .order_by(models.LogEntry.seq)
        )
        last = session.scalar(
            select(models.LogEntry.seq)
            .where(models.LogEntry.event_time >= start, models.LogEntry.event_time < end)
            .order_by(models.LogEntry.seq.desc())
            .limit(1)
        )
        head = latest
        if last is not None:
            found = session.scalar(
                select(models.TreeHead)
                .where(models.TreeHead.tree_size > last)
                .order_by(models.TreeHead.tree_size)
                .limit(1)
            )
            if found is None:
                raise ExportError(
                    "entries of the period are after the last sealed head: seal one first"
                )
            head = found
        nodes = LogRepository(session).node()
        archives = ArchiveRepository(session)
        entries = evidence = journal = 0
        people = Exported()
        with (partial / "entries.jsonl").open("wb") as lines:
            for entry, item in session.execute(in_period.execution_options(yield_per=1000)):
                assert entry.seq is not None
                proof = log.inclusion_path(entry.seq, head.tree_size, nodes)
                record = {
                    "index": entry.seq,
                    "leaf": base64.b64encode(entry.leaf).decode(),
                    "proof": [h.hex() for h in proof],
                }
                lines.write(json.dumps(record, sort_keys=True).encode() + b"\n")
                entries += 1
                if entry.letter_id is None:
                    journal += 1
                    export_entry(session, json.loads(entry.leaf), partial, people)
                if item is not None:
                    (partial / "evidence" / f"{item.id}.json").write_bytes(item.document)
                    (partial / "evidence" / f"{item.id}.p7m").write_bytes(item.seal)
                    renewed = archives.archived_seal(item.id)
                    if renewed is not None:  # with its archive timestamps (B-LTA)
                        (partial / "evidence" / f"{item.id}.archive.p7m").write_bytes(renewed)
                    evidence += 1
                if progress is not None:
                    # Called (or not) at once: the counts are this row's.
                    progress.tick(lambda: f"{entries} entries, {evidence} evidence written")  # noqa: B023
        consistency = log.consistency_path(head.tree_size, latest.tree_size, nodes)
    for sealed in {head.tree_size: head, latest.tree_size: latest}.values():
        (partial / "heads" / f"{sealed.number}.json").write_bytes(sealed.document)
        (partial / "heads" / f"{sealed.number}.p7m").write_bytes(sealed.seal)
    (partial / "consistency.json").write_text(
        json.dumps(
            {
                "first": head.tree_size,
                "second": latest.tree_size,
                "hashes": [h.hex() for h in consistency],
            }
        )
    )
    if anchors is not None:
        (partial / "anchors.pem").write_bytes(anchors.read_bytes())
    manifest = {
        "format": FORMAT,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "entries": entries,
        "evidence": evidence,
        "journal": journal,
        "head": head.number,
        "latestHead": latest.number,
        **people.manifest(),
        "files": {name: _sha256(partial / name) for name in _files(partial)},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    partial.rename(out)
    return manifest


def _files(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            yield path.relative_to(root).as_posix()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ExportReport:
    entries: int = 0
    evidence: int = 0
    journal: int = 0
    # Identity records and consents the journal entries bind, and the
    # records whose personal data was erased before the export.
    identity_records: int = 0
    consents: int = 0
    erased: int = 0
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Each evidence and the instant its chain of timestamps proves it existed.
    proven: list[str] = field(default_factory=list)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_export(out: Path, anchors: Path | None, provider: Path | None = None) -> ExportReport:
    """The findings on the archive ``out`` under ``anchors``, every seal held
    to ``provider``'s declared certificates (its seal certificates, current
    and retired, and its TSAs'), as verify-log holds them: the anchors
    certify every subscriber of their CA, not only the provider."""
    report = ExportReport()
    add = report.findings.append
    if not (out / MANIFEST).is_file():
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            add(f"the export was interrupted: {partial.name} is there, {out.name} is not complete")
        else:
            add(f"{out}: no {MANIFEST} (not an export, or an incomplete one)")
        return report
    try:
        manifest = json.loads((out / MANIFEST).read_bytes())
        files: dict[str, str] = dict(manifest["files"])
        if manifest.get("format") != FORMAT:
            raise ValueError("format")
        head_number, latest_number = int(manifest["head"]), int(manifest["latestHead"])
    except (ValueError, KeyError, TypeError):
        add(f"{MANIFEST} is malformed (corrupted)")
        return report
    present = set(_files(out))
    for name in sorted(set(files) - present):
        add(f"{name}: listed in the manifest, missing (deleted)")
    for name in sorted(present - set(files)):
        add(f"{name}: not in the manifest (added)")
    for name in sorted(set(files) & present):
        if _sha256(out / name) != files[name]:
            add(f"{name}: its SHA-256 is not the manifest's (corrupted or changed)")
    if anchors is None and (out / "anchors.pem").is_file():
        anchors = out / "anchors.pem"
        report.notes.append("seals checked under the archive's own anchors.pem: pass --anchors")
    declared = None
    if provider is not None:
        try:
            declared = Provider(provider)
        except (OSError, ValueError) as exc:
            add(f"the provider's certificates ({provider}) cannot be read: {exc}")
            return report
    seals = SealChecker(anchors, declared) if anchors is not None else None
    if seals is None:
        report.notes.append("seals not verified: no trust anchors")
    elif declared is None:
        report.notes.append(
            "seals not checked against the provider's own certificates: pass --provider "
            "or set provider_certificates_file (the anchors certify others too)"
        )
    heads = {n: _head(out, n, seals, add) for n in {head_number, latest_number}}
    head, latest = heads[head_number], heads[latest_number]
    if head is None or latest is None:
        return report
    try:
        consistency = json.loads((out / "consistency.json").read_bytes())
        proof = [bytes.fromhex(h) for h in consistency["hashes"]]
        sizes = (consistency["first"], consistency["second"])
    except (OSError, ValueError, KeyError, TypeError):
        add("consistency.json is malformed")
    else:
        if sizes != (head[0], latest[0]) or not log.verify_consistency(
            head[0], latest[0], head[1], latest[1], proof
        ):
            add(f"tree head {latest_number} is not proven to extend tree head {head_number}")
    _entries(out, head, seals, report, set(manifest.get("erasedIdentityRecords") or []))
    counts = (
        ("entries", report.entries),
        ("evidence", report.evidence),
        ("journal", report.journal),
        ("identityRecords", report.identity_records),
        ("consents", report.consents),
    )
    for name, expected in counts:
        # Exports made before identity records and consents were archived lack their counts.
        if name in ("identityRecords", "consents") and name not in manifest:
            continue
        if manifest.get(name) != expected:
            add(f"the manifest says {manifest.get(name)} {name}, the archive holds {expected}")
    return report


def _head(out: Path, number: int, seals: SealChecker | None, add: Any) -> tuple[int, bytes] | None:
    """(size, root) of an archived head whose seal covers its document."""
    try:
        document = (out / "heads" / f"{number}.json").read_bytes()
        seal = (out / "heads" / f"{number}.p7m").read_bytes()
        fields = json.loads(document)
        size, root_hash = int(fields["treeSize"]), bytes.fromhex(fields["rootHash"])
    except (OSError, ValueError, KeyError, TypeError):
        add(f"tree head {number}: missing or malformed")
        return None
    if seals is not None:
        why = seals.problem(seal, document)
        if why:
            add(f"tree head {number}: its seal {why}")
    return size, root_hash


def _entries(
    out: Path,
    head: tuple[int, bytes],
    seals: SealChecker | None,
    report: ExportReport,
    erased: set[str],
) -> None:
    add = report.findings.append
    people = Checked()
    try:
        lines = (out / "entries.jsonl").open("rb")
    except OSError:
        add("entries.jsonl is missing")
        return
    with lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                index = int(record["index"])
                leaf = base64.b64decode(record["leaf"], validate=True)
                proof = [bytes.fromhex(h) for h in record["proof"]]
                fields = json.loads(leaf)
                if not isinstance(fields, dict):
                    raise TypeError("leaf")
            except (ValueError, KeyError, TypeError):
                add(f"entries.jsonl, line {number}: malformed")
                continue
            report.entries += 1
            if not log.verify_inclusion(log.leaf_hash(leaf), index, head[0], proof, head[1]):
                add(f"entry {index}: not proven to be in the sealed head (changed)")
            if "kind" in fields:  # the journal's: a kind the service writes, its fields only
                report.journal += 1
                for problem in leaf_problems(fields):
                    add(f"entry {index}: {problem}")
                check_entry(out, index, fields, erased, people, add)
                continue
            name = fields.get("evidence")
            if isinstance(name, str):
                _evidence(out, index, name, fields, seals, report)
    report.identity_records, report.consents = len(people.records), len(people.consents)
    report.erased = people.erased


def _evidence(
    out: Path,
    index: int,
    name: str,
    leaf: dict[str, Any],
    seals: SealChecker | None,
    report: ExportReport,
) -> None:
    add = report.findings.append
    try:
        evidence_id = uuid.UUID(name.rsplit("/", 1)[-1])
        document = (out / "evidence" / f"{evidence_id}.json").read_bytes()
        seal = (out / "evidence" / f"{evidence_id}.p7m").read_bytes()
    except (ValueError, OSError):
        add(f"entry {index}: its evidence is missing from the archive")
        return
    report.evidence += 1
    if leaf.get("documentSha256") != log.sha256_hex(document) or leaf.get(
        "sealSha256"
    ) != log.sha256_hex(seal):
        add(f"evidence {evidence_id} (entry {index}): not the one the log holds (changed)")
    if seals is not None:
        why = seals.problem(seal, document)
        if why:
            add(f"evidence {evidence_id} (entry {index}): its seal {why}")
    renewed = out / "evidence" / f"{evidence_id}.archive.p7m"
    try:
        problem, proven = archived.assess_seal(
            seal, renewed.read_bytes() if renewed.exists() else None, seals, {}, report.now
        )
    except ValueError as exc:
        problem, proven = f"its seal cannot be read ({exc})", None
    if problem:
        add(f"evidence {evidence_id} (entry {index}): {problem}")
    else:
        report.proven.append(f"evidence {evidence_id}: {proven}")
