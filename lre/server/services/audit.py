"""`lre-server verify-log`: replays the log from the database and reports
every entry deleted, changed or inserted out of order, every evidence changed
or missing from the log, and every sealed tree head the log no longer matches.

An operator with write access to the database can rewrite rows, but not the
tree heads the signer sealed: whatever the rows say now must hash to the
roots those seals vouch for."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import log
from lre.server.domain.evidence import _utc
from lre.server.storage import models


@dataclass
class LogReport:
    entries: int = 0
    evidence: int = 0
    heads: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _seal_matches(seal: bytes, document: bytes, anchors: Path) -> bool:
    """``openssl cms -verify``: the seal is valid under the anchors and covers the document."""
    with tempfile.NamedTemporaryFile(suffix=".p7m") as sealed:
        sealed.write(seal)
        sealed.flush()
        result = subprocess.run(
            ["openssl", "cms", "-verify", "-inform", "DER", "-in", sealed.name,
             "-CAfile", str(anchors)],
            capture_output=True,
            timeout=30,
        )  # fmt: skip
    return result.returncode == 0 and result.stdout == document


def verify_log(sessions: sessionmaker[DbSession], anchors: Path | None) -> LogReport:
    report = LogReport()
    with sessions() as db:
        entries = list(db.scalars(select(models.LogEntry).order_by(models.LogEntry.seq)))
        evidence = {e.id: e for e in db.scalars(select(models.Evidence))}
        heads = list(db.scalars(select(models.TreeHead).order_by(models.TreeHead.tree_size)))
    sequenced = [e for e in entries if e.seq is not None]
    report.entries, report.evidence, report.heads = len(sequenced), len(evidence), len(heads)
    problems = report.problems

    expected = 0
    for entry in sequenced:
        assert entry.seq is not None
        while expected < entry.seq:
            problems.append(f"entry {expected} is missing (deleted)")
            expected += 1
        expected = entry.seq + 1

    logged: set[uuid.UUID] = set()
    last_time: dict[uuid.UUID, tuple[int, str]] = {}
    for entry in sequenced:
        try:
            leaf = json.loads(entry.leaf)
        except ValueError:
            problems.append(f"entry {entry.seq}: its leaf is not the service's JSON (changed)")
            continue
        if entry.letter_id is None or entry.state is None:
            # An entry about a party (its leaf has a kind): nothing else to match.
            if not leaf.get("kind") or leaf.get("eventTime") != _utc(entry.event_time):
                problems.append(
                    f"entry {entry.seq}: the row no longer says what its leaf says (changed)"
                )
            continue
        row = {
            "letter": f"letters/{entry.letter_id}",
            "state": entry.state.value,
            "eventTime": _utc(entry.event_time),
            "event": entry.event.value if entry.event else None,
        }
        if any(leaf.get(k) != v for k, v in row.items()):
            problems.append(
                f"entry {entry.seq}: the row no longer says what its leaf says (changed)"
            )
        previous = last_time.get(entry.letter_id)
        if previous is not None and leaf.get("eventTime", "") < previous[1]:
            problems.append(
                f"entry {entry.seq}: dated before entry {previous[0]} of the same letter "
                "(back-dated or out of order)"
            )
        last_time[entry.letter_id] = (entry.seq or 0, str(leaf.get("eventTime", "")))
        if entry.evidence_id is None:
            continue
        logged.add(entry.evidence_id)
        found = evidence.get(entry.evidence_id)
        if found is None:
            problems.append(f"entry {entry.seq}: evidence {entry.evidence_id} is missing (deleted)")
        elif (
            leaf.get("documentSha256") != log.sha256_hex(found.document)
            or leaf.get("sealSha256") != log.sha256_hex(found.seal)
            or found.event != entry.event
            or found.event_time != entry.event_time
        ):
            problems.append(f"evidence {found.id} (entry {entry.seq}) was changed")
    for evidence_id in sorted(set(evidence) - logged, key=str):
        problems.append(f"evidence {evidence_id} is not in the log (inserted outside the service)")

    hashes = [log.leaf_hash(e.leaf) for e in sequenced]
    can_verify_seals = anchors is not None and shutil.which("openssl") is not None
    if heads and not can_verify_seals:
        report.notes.append("tree head seals not verified: set seal_trust_anchors_file")
    for head in heads:
        document = json.loads(head.document)
        if head.tree_size > len(hashes):
            problems.append(f"tree head {head.tree_size}: the log is shorter (entries deleted)")
        elif (
            log.root(hashes[: head.tree_size]) != head.root_hash
            or document.get("rootHash") != head.root_hash.hex()
            or document.get("treeSize") != head.tree_size
        ):
            problems.append(
                f"tree head {head.tree_size}: the log no longer hashes to its root "
                f"(an entry below {head.tree_size} was changed, deleted or reordered)"
            )
        if (
            can_verify_seals
            and anchors is not None
            and not _seal_matches(head.seal, head.document, anchors)
        ):
            problems.append(f"tree head {head.tree_size}: its seal does not verify")
    return report
