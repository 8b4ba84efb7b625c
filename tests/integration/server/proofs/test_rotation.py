"""Bundles across a rotation of the seal and TSA keys: evidence sealed,
stamped and signed (PDF proof) under the old keys, its tree head sealed
after the ceremony under the new ones (a key made on the token, its CSR, the
CA issues, the certificate imported, the signer restarted on the new labels).
The bundle carries the chains each seal was made with, and `lre-verify`
finds it valid under the provider's declared certificates, current and
retired."""

from __future__ import annotations

import io
import os
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
from lre.verify import verify_bundle
from lre.verify.provider import Provider, load_certificates
from tests.support.bundles import build_test_bundle
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import copy_token, key_ceremony, signer_env


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
    env = {**os.environ, "LRE_CONFIG": str(dev_var.config), "SOFTHSM2_CONF": str(conf)}
    new_seal, new_tsa = key_ceremony(
        env,
        (dev_var.pki / "root-ca.key", dev_var.pki / "root-ca.pem"),
        ("lre-seal-2", pki.SEAL, "CN=LRE Seal 2027,O=LRE development,C=FR"),
        ("lre-tsa-2", pki.TIMESTAMPING, "CN=LRE TSA 2027,O=LRE development,C=FR"),
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
    # (in process: the same checks as the command above)
    anchor = x509.load_pem_x509_certificate((dev_var.pki / "root-ca.pem").read_bytes())
    refused = verify_bundle(
        bundle,
        [anchor.public_bytes(serialization.Encoding.DER)],
        Provider.of(load_certificates(new_seal + new_tsa)),
    )
    assert "evidence seal: the provider's seal" in refused.failed
    assert "evidence seal: the provider's TSA" in refused.failed
    assert "tree head seal: the provider's seal" not in refused.failed


def _verify(bundle: Path, root: Path, provider: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lre-verify"), str(bundle), "--trust", str(root), "--provider", str(provider)],
        capture_output=True,
        text=True,
        timeout=60,
    )
