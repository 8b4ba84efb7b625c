"""``lre-verify BUNDLE [--trust CA.pem] [--json]``: exit 0 when VALID, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asn1crypto import pem

from lre.runtime.version import add_version_option
from lre.verify.bundle import verify_bundle
from lre.verify.report import Report


def _anchors(paths: list[Path]) -> tuple[list[bytes], str | None]:
    anchors: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return [], f"cannot read {path}: {exc.strerror}"
        if pem.detect(data):
            found = [d for t, _h, d in pem.unarmor(data, multiple=True) if t == "CERTIFICATE"]
        else:
            found = [data]
        if not found:
            return [], f"{path} holds no certificate"
        anchors += found
    return anchors, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lre-verify",
        description="Verify an LRE evidence bundle offline: seals, timestamps, chains, "
        "CRLs, the PDF proof, and the evidence's inclusion in a sealed tree head.",
    )
    add_version_option(parser, "lre-client")
    parser.add_argument("bundle", type=Path, help="the bundle (.zip)")
    parser.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        metavar="CA.pem",
        help="a root CA certificate you trust (PEM or DER; repeatable). Without it "
        "nothing is anchored and the verdict is INVALID.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    report = Report()
    anchors, problem = _anchors(args.trust)
    if problem is not None:
        report.add("trust anchors", False, problem)
    else:
        try:
            data = args.bundle.read_bytes()
        except OSError as exc:
            report.add("bundle", False, f"cannot read {args.bundle}: {exc.strerror}")
        else:
            try:
                report = verify_bundle(data, anchors)
            except ValueError as exc:  # a --trust file that is not a certificate
                report.add("trust anchors", False, f"not a certificate: {exc}")
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(report.as_text())
    return 0 if report.valid else 1


if __name__ == "__main__":
    sys.exit(main())
