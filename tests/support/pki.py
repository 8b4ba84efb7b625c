"""openssl as an independent verifier of what the signer produces."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lre.v1 import custody_pb2
from tests.support.signer import SignerProcess


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)


def ts_verify(
    data: Path, reply: Path, root_ca: Path, tsa_cert: Path, token_in: bool = False
) -> bool:
    """`openssl ts -verify` of a reply (or a bare token) over ``data``."""
    extra = ["-token_in"] if token_in else []
    result = openssl(
        "ts",
        "-verify",
        "-data",
        data,
        "-in",
        reply,
        *extra,
        "-CAfile",
        root_ca,
        "-untrusted",
        tsa_cert,
    )
    return "Verification: OK" in result.stdout


def verify_seal(
    evidence: custody_pb2.Evidence, signer: SignerProcess, tmp_path: Path
) -> dict[str, Any]:
    """The evidence's document, once `openssl cms -verify` has checked its
    seal against the signer's root CA and found that very document inside."""
    sealed = tmp_path / f"{evidence.name.rsplit('/', 1)[-1]}.p7m"
    sealed.write_bytes(evidence.seal)
    verify = openssl("cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer.root_ca)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.encode() == evidence.document
    return dict(json.loads(evidence.document))
