"""`lre-server verify-log`: what an auditor with a copy of the database (and,
ideally, the tree heads published outside it) can prove without trusting the
service's code.

Streaming passes over one read-only snapshot (``lre.server.audit.reading``),
each O(n) time and bounded memory (no pass holds more than one letter, or
O(log n) hashes):

1. The log in index order and its tree heads (``lre.server.audit.heads``):
   every sealed head's root recomputed from the leaves, heads numbered
   without gaps and sealed, and, with ``against``, every head published
   outside the database still in it and still matching the log.
2. Letter by letter (``lre.server.audit.replay``): the letter's entries
   replayed through the domain's state machine, each evidence row and its
   sealed document against its leaf and its letter
   (``lre.server.audit.evidence``), the ``letters`` row against the replay.
3. The journal (``lre.server.audit.journal``): every sealed leaf against the
   leaf hash stored with its head, every journal leaf against its kind's
   fields, every journaled proofing against its identity record.

Every defect is a finding with what it is and where; nothing in the data makes
it raise."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy.exc import StatementError

from lre.runtime import longterm
from lre.server.audit import archived, archived_pdf, heads, journal, replay
from lre.server.audit.reading import Progress, Report, read_only_engine, snapshot
from lre.server.audit.seals import Provider, SealChecker
from lre.server.domain import log

__all__ = ["Report", "verify_log"]


def verify_log(
    database_url: str,
    anchors: Path | None,
    against: Path | None = None,
    provider: Path | None = None,
    compromised: Path | None = None,
    progress: Progress | None = None,
) -> Report:
    report = Report(progress=progress)
    keys = longterm.load_compromises(compromised) if compromised is not None else {}
    declared = Provider(provider) if provider is not None else None
    seals = SealChecker(anchors, declared) if anchors is not None else None
    if seals is None:
        report.notes.append("seals not verified: set seal_trust_anchors_file")
    elif declared is None:
        report.notes.append(
            "seals not checked against the provider's own certificates: set "
            "provider_certificates_file (the root certifies others too)"
        )
    if against is None:
        report.notes.append(
            "no --against: a deleted latest head or a rolled-back tail would not show"
        )
    published: list[log.PublishedHead] = []
    if against is not None:
        published = _published(against, report)
    engine = read_only_engine(database_url)
    try:
        with snapshot(engine) as connection:
            passes = (("log", heads.check), ("letters", replay.check), ("journal", journal.check))
            for name, check in passes:
                try:
                    check(connection, report, seals, published)
                except (ValueError, TypeError, LookupError, StatementError) as exc:
                    # A value the database hands back that its column type cannot
                    # read (SQLite stores anything): named, and the pass stops.
                    report.add(f"the {name} pass stopped at an unreadable row ({_short(exc)})")
            now = dt.datetime.now(dt.UTC)
            for name, pass_ in (("archive", archived.check), ("PDF archive", archived_pdf.check)):
                try:
                    pass_(connection, report, seals, keys, now)
                except (ValueError, TypeError, LookupError, StatementError) as exc:
                    report.add(f"the {name} pass stopped at an unreadable row ({_short(exc)})")
    finally:
        engine.dispose()
    return report


def _published(path: Path, report: Report) -> list[log.PublishedHead]:
    """The heads published outside the database (a file, or the export directory)."""
    if path.is_dir():
        path = path / "tree-heads.jsonl"
    heads = []
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    heads.append(log.PublishedHead.parse(line))
                except (ValueError, KeyError, TypeError):
                    report.add(f"published head file, line {number}: malformed or rewritten")
    except OSError as exc:
        report.add(f"published heads {path}: cannot be read ({exc.strerror})")
    report.published = len(heads)
    return sorted(heads, key=lambda h: h.tree_size)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}"
