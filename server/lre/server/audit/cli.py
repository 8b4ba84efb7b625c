"""`lre-server verify-log`, `export` and `verify-export`: every finding
printed, exit 1 if any."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from lre.server.audit import archive
from lre.server.audit.reading import Progress
from lre.server.audit.verify import verify_log
from lre.server.config import ServerSettings
from lre.server.storage import db


def verify_log_command(
    settings: ServerSettings,
    against: Path | None,
    every_s: float,
    compromised: Path | None = None,
) -> int:
    report = verify_log(
        settings.database(),
        settings.seal_trust_anchors_file,
        against,
        settings.provider_certificates_file,
        compromised or settings.compromised_keys_file,
        Progress("verify-log", every_s),
    )
    for line in report.findings:
        print(f"PROBLEM {line}")
    if report.defects > len(report.findings):
        print(f"PROBLEM ... and {report.defects - len(report.findings)} more")
    for line in report.notes:
        print(f"note: {line}")
    verdict = "verified" if report.ok else f"NOT verified ({report.defects} problems)"
    against_text = f", {report.published} published heads" if against is not None else ""
    print(
        f"log {verdict}: {report.entries} entries ({report.unsequenced} not yet sequenced), "
        f"{report.letters} letters, {report.evidence} evidence, {report.journal} journal entries, "
        f"{report.heads} sealed tree heads{against_text}, "
        f"{report.erased} erased (personal data gone, proofs kept)"
    )
    return 0 if report.ok else 1


def export_command(
    settings: ServerSettings, start: str, end: str, out: Path, every_s: float
) -> int:
    try:
        period = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    except ValueError:
        print("lre-server export: --from and --to are ISO 8601 times", file=sys.stderr)
        return 2
    if any(t.tzinfo is None for t in period):
        print("lre-server export: give --from and --to with their UTC offset", file=sys.stderr)
        return 2
    if period[0] >= period[1]:
        print("lre-server export: --from must be before --to", file=sys.stderr)
        return 2
    engine = db.make_engine(settings.database())
    try:
        manifest = archive.export(
            engine, *period, out, settings.seal_trust_anchors_file, Progress("export", every_s)
        )
    except archive.ExportError as exc:
        print(f"lre-server export: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(
        f"exported {manifest['entries']} entries, {manifest['evidence']} evidence, "
        f"{manifest['journal']} journal entries, {manifest['identityRecords']} identity records, "
        f"{manifest['consents']} consents to {out}"
    )
    return 0


def verify_export_command(
    settings: ServerSettings, out: Path, anchors: Path | None, provider: Path | None = None
) -> int:
    report = archive.verify_export(
        out,
        anchors or settings.seal_trust_anchors_file,
        provider or settings.provider_certificates_file,
    )
    for line in report.proven:
        print(line)
    for line in report.findings:
        print(f"PROBLEM {line}")
    for line in report.notes:
        print(f"note: {line}")
    verdict = "verified" if report.ok else f"NOT verified ({len(report.findings)} problems)"
    print(
        f"export {verdict}: {report.entries} entries, {report.evidence} evidence, "
        f"{report.journal} journal entries, {report.identity_records} identity records, "
        f"{report.consents} consents, {report.erased} erased"
    )
    return 0 if report.ok else 1
