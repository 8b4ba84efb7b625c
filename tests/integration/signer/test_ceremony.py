"""Key ceremony through the `lre-signer` command, on the real token."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.signer import pki
from lre.signer.devsetup import DevPaths


def lre_signer(dev_var: DevPaths, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LRE_CONFIG": str(dev_var.config),
        "SOFTHSM2_CONF": str(dev_var.softhsm_conf.resolve()),
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "lre-signer"), *args],
        env=env,
        capture_output=True,
        text=True,
    )


def test_create_key_csr_issue_and_import(dev_var: DevPaths, tmp_path: Path) -> None:
    label = f"ceremony-{uuid.uuid4().hex[:8]}"
    assert lre_signer(dev_var, "create-key", "--label", label).returncode == 0
    again = lre_signer(dev_var, "create-key", "--label", label)
    assert again.returncode == 1 and "exists already" in again.stderr

    csr_path = tmp_path / "seal.csr"
    made = lre_signer(
        dev_var,
        "csr",
        "--label",
        label,
        "--subject",
        "CN=Provider Seal,O=Provider SAS,C=FR",
        "--out",
        str(csr_path),
    )
    assert made.returncode == 0, made.stderr
    verify = subprocess.run(
        ["openssl", "req", "-in", str(csr_path), "-verify", "-noout", "-subject"],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and "verify OK" in (verify.stdout + verify.stderr)
    assert "CN = Provider Seal" in verify.stdout

    ca = pki.LocalCA.load(dev_var.pki / "root-ca.key", dev_var.pki / "root-ca.pem")
    csr_der = x509.load_pem_x509_csr(csr_path.read_bytes()).public_bytes(serialization.Encoding.DER)
    cert_path = tmp_path / "seal.pem"
    cert_path.write_bytes(
        x509.load_der_x509_certificate(ca.issue(csr_der, pki.SEAL)).public_bytes(
            serialization.Encoding.PEM
        )
    )
    imported = lre_signer(dev_var, "import-certificate", "--label", label, "--cert", str(cert_path))
    assert imported.returncode == 0, imported.stderr

    # A certificate for another key is refused.
    other = lre_signer(
        dev_var, "import-certificate", "--label", label, "--cert", str(dev_var.pki / "seal.pem")
    )
    assert other.returncode == 1 and "not for the key" in other.stderr

    shown = lre_signer(dev_var, "show-key", "--label", label)
    assert shown.stdout.strip() == "{'extractable': False, 'sensitive': True}"

    wrap_label = f"wrap-{uuid.uuid4().hex[:8]}"
    assert (
        lre_signer(dev_var, "create-key", "--label", wrap_label, "--kind", "aes-256").returncode
        == 0
    )
    assert (
        lre_signer(dev_var, "show-key", "--label", wrap_label).stdout.strip()
        == "{'extractable': False, 'sensitive': True}"
    )


def test_dev_setup_is_idempotent(dev_var: DevPaths) -> None:
    before = {p: p.read_bytes() for p in sorted(dev_var.pki.iterdir())}
    config = dev_var.config.read_text()
    result = lre_signer(dev_var, "dev-setup", "--var", str(dev_var.root))
    assert result.returncode == 0, result.stderr
    assert {p: p.read_bytes() for p in sorted(dev_var.pki.iterdir())} == before
    assert dev_var.config.read_text() == config


def test_a_ceremonys_mistakes_are_said_in_one_line(dev_var: DevPaths, tmp_path: Path) -> None:
    """An operator's typo gets a message naming it, never a traceback."""
    label = f"ceremony-{uuid.uuid4().hex[:8]}"
    assert lre_signer(dev_var, "create-key", "--label", label).returncode == 0
    not_a_certificate = tmp_path / "passwd"
    not_a_certificate.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for args, said in (
        (
            ("csr", "--label", label, "--subject", "garbage===", "--out", str(tmp_path / "x")),
            "is not an RFC 4514 name",
        ),
        (
            ("import-certificate", "--label", label, "--cert", str(not_a_certificate)),
            "not a PEM or DER certificate",
        ),
    ):
        done = lre_signer(dev_var, *args)
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    missing = subprocess.run(
        [str(Path(sys.executable).parent / "lre-signer"), "check-token"],
        env={**os.environ, "LRE_CONFIG": str(tmp_path / "none.toml")},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "configuration error" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr
