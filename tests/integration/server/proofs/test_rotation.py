"""Bundles across a rotation of the seal and TSA keys: evidence sealed,
stamped and signed (PDF proof) under the old keys, its tree head sealed
after the ceremony under the new ones (`lre-signer create-key`, `csr`, the
CA issues, `import-certificate`, the signer restarted on the new labels).
The bundle carries the chains each seal was made with, and `lre-verify`
finds it valid under the provider's declared certificates, current and
retired."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.runtime import bundle_layout as layout
from lre.server.adapters.signer import SignerClient
from lre.signer import pki
from lre.signer.devsetup import DevPaths
from tests.support.bundles import build_test_bundle
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import copy_token, lre_signer, signer_env


@contextmanager
def _signer(paths: DevPaths, conf: Path, log: Path, **labels: str) -> Iterator[SignerClient]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **signer_env(paths, grpc_port, http_port),
        "SOFTHSM2_CONF": str(conf),
        **{f"LRE_SIGNER_{k.upper()}": v for k, v in labels.items()},
    }
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address) == SERVING, timeout=60), log.read_text()
        client = SignerClient(address, timeout_s=30)
        try:
            yield client
        finally:
            client.close()


def _ceremony(paths: DevPaths, conf: Path, label: str, purpose: str, subject: str) -> bytes:
    """A new key on the token, certified by the CA; its certificate (PEM)."""
    ca = pki.LocalCA.load(paths.pki / "root-ca.key", paths.pki / "root-ca.pem")
    csr = conf.parent / f"{label}.csr"
    for args in (
        ("create-key", "--label", label),
        ("csr", "--label", label, "--subject", subject, "--out", str(csr)),
    ):
        done = lre_signer(paths, conf, *args)
        assert done.returncode == 0, done.stderr
    request = x509.load_pem_x509_csr(csr.read_bytes())
    der = ca.issue(request.public_bytes(serialization.Encoding.DER), purpose)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    cert = conf.parent / f"{label}.pem"
    cert.write_bytes(pem)
    done = lre_signer(paths, conf, "import-certificate", "--label", label, "--cert", str(cert))
    assert done.returncode == 0, done.stderr
    return pem


def _chain_subjects(bundle: bytes, member: str) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        data = archive.read(member)
    return [
        str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        for c in x509.load_pem_x509_certificates(data)
    ]


def test_evidence_sealed_before_a_key_rotation_verifies_after_it(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    conf = copy_token(dev_var, tmp_path)
    new_seal = _ceremony(
        dev_var, conf, "lre-seal-2", pki.SEAL, "CN=LRE Seal 2027,O=LRE development,C=FR"
    )
    new_tsa = _ceremony(
        dev_var, conf, "lre-tsa-2", pki.TIMESTAMPING, "CN=LRE TSA 2027,O=LRE development,C=FR"
    )
    with (
        _signer(dev_var, conf, tmp_path / "before.log") as before,
        _signer(
            dev_var,
            conf,
            tmp_path / "after.log",
            seal_key_label="lre-seal-2",
            tsa_key_label="lre-tsa-2",
        ) as after,
    ):
        assert after.certificate_chain("seal")[0] != before.certificate_chain("seal")[0]
        bundle = build_test_bundle(before, head_client=after)

    # Each seal's own chain: the evidence's under the old keys, the head's under the new.
    root = "LRE Development Root CA"
    assert _chain_subjects(bundle, layout.SEAL_CHAIN) == [
        "LRE Development Seal",
        root,
        "LRE Seal 2027",
        root,
    ]
    assert _chain_subjects(bundle, layout.TSA_CHAIN) == [
        "LRE Development TSA",
        root,
        "LRE TSA 2027",
        root,
    ]

    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    # The provider declares its certificates, current and retired.
    provider = tmp_path / "provider-certificates.pem"
    provider.write_bytes(
        (dev_var.pki / "seal.pem").read_bytes()
        + (dev_var.pki / "timestamping.pem").read_bytes()
        + new_seal
        + new_tsa
    )
    result = _verify(path, dev_var.pki / "root-ca.pem", provider)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VALID"
    assert "evidence seal: the provider's seal: sealed by" in result.stdout
    assert "LRE Development Seal" in result.stdout and "LRE Seal 2027" in result.stdout

    # Without the retired certificates declared, the old evidence is not the provider's.
    current_only = tmp_path / "current-only.pem"
    current_only.write_bytes(new_seal + new_tsa)
    refused = _verify(path, dev_var.pki / "root-ca.pem", current_only)
    assert refused.returncode != 0
    assert "not one of the provider's seal certificates" in refused.stdout


def _verify(bundle: Path, root: Path, provider: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lre-verify"), str(bundle), "--trust", str(root), "--provider", str(provider)],
        capture_output=True,
        text=True,
        timeout=60,
    )
