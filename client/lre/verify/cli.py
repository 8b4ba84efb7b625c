"""``lre-verify BUNDLE --trust CA.pem --provider CERTS.pem [--json]``: exit 0
when VALID, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lre.runtime.longterm import Compromise, load_compromises
from lre.runtime.version import add_version_option
from lre.verify.bundle import verify_bundle
from lre.verify.provider import Provider, load_certificates
from lre.verify.report import Report


def _anchors(paths: list[Path]) -> tuple[list[bytes], str | None]:
    anchors: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return [], f"cannot read {path}: {exc.strerror}"
        found = load_certificates(data)
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
    parser.add_argument(
        "--provider",
        type=Path,
        action="append",
        default=[],
        metavar="CERTS.pem",
        help="the provider's seal certificates (current and retired) and its timestamp "
        "authorities' certificates, as it publishes them beside its root (PEM; repeatable). "
        "Every seal and timestamp must be by one of them: a certificate the same root "
        "issued to anyone else is not the provider. Without it the verdict is INVALID.",
    )
    parser.add_argument(
        "--compromised",
        type=Path,
        metavar="KEYS.json",
        help="the provider's keys declared compromised, as it publishes them "
        '({"keys": [{"certificateSha256", "compromisedAt", "reason"}]}): what such a key '
        "signed after that instant is refused, and what it signed before stands only where "
        "a timestamp by another key made before it covers it",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    report = Report()
    anchors, problem = _anchors(args.trust)
    provider: Provider | None = None
    if problem is None and args.provider:
        declared, problem = _anchors(args.provider)
        if problem is None:
            try:
                provider = Provider.of(declared)
            except ValueError as exc:
                problem = f"a --provider file holds something else than certificates: {exc}"
    compromised: dict[str, Compromise] = {}
    if problem is None and args.compromised:
        try:
            compromised = load_compromises(args.compromised)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"cannot read the compromised keys in {args.compromised}: {exc}"
    if problem is not None:
        report.add("trust anchors", False, problem)
    else:
        try:
            data = args.bundle.read_bytes()
        except OSError as exc:
            report.add("bundle", False, f"cannot read {args.bundle}: {exc.strerror}")
        else:
            try:
                report = verify_bundle(data, anchors, provider, compromised)
            except ValueError as exc:  # a --trust file that is not a certificate
                report.add("trust anchors", False, f"not a certificate: {exc}")
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(report.as_text())
    return 0 if report.valid else 1


if __name__ == "__main__":
    sys.exit(main())
