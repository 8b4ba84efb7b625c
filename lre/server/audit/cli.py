"""`lre-server verify-log [--against HEADS]`: prints every finding, exit 1 if any."""

from __future__ import annotations

from pathlib import Path

from lre.server.audit.verify import verify_log
from lre.server.config import ServerSettings


def verify_log_command(settings: ServerSettings, against: Path | None) -> int:
    report = verify_log(settings.database_url, settings.seal_trust_anchors_file, against)
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
        f"{report.letters} letters, {report.evidence} evidence, "
        f"{report.heads} sealed tree heads{against_text}"
    )
    return 0 if report.ok else 1
