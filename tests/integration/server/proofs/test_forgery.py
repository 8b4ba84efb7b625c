"""The forgery of a whole bundle by another subscriber of the provider's CA:
a second signer process, its own token and keys, with a seal and a TSA
certificate issued by the same root (even under the same names), seals a
ConsignmentAcceptance naming the provider, seals a tree head and signs the
project's own PDF proof. Under the root alone everything chains; `lre-verify`
with the provider's declared certificates says INVALID and names why, while
the genuine bundle stays VALID, also when the provider declares a newer seal
certificate beside the retired one that sealed it. `verify-export` holds
an archive's seals to the same declared certificates."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lre.server.adapters.signer import SignerClient
from lre.server.audit import archive
from lre.server.proofs.bundle import zip_members
from lre.server.services.events import EventLog
from lre.signer import pki
from lre.signer.devsetup import DevPaths
from tests.support.bundles import build_test_bundle
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import SignerProcess, signer_env
from tests.support.world import World

PROVIDER = "LRE Test Provider SAS"


@pytest.fixture(scope="module")
def mallory(
    signer_process: SignerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SignerClient, DevPaths]]:
    """Another signer process: its own token, certificates from the same root."""
    paths = DevPaths(tmp_path_factory.mktemp("mallory"))
    paths.pki.mkdir(parents=True)
    for name in ("root-ca.key", "root-ca.pem"):
        shutil.copy(signer_process.paths.pki / name, paths.pki / name)
    # In a process of its own: this one has SoftHSM loaded with the
    # provider's token configuration already.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTHSM2_", "LRE_"))}
    subprocess.run(
        [str(BIN / "lre-signer"), "dev-setup", "--var", str(paths.root)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    grpc_port, http_port = free_port(), free_port()
    log = paths.root / "signer.log"
    with running([str(BIN / "lre-signer"), "serve"], signer_env(paths, grpc_port, http_port), log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address) == SERVING), log.read_text()
        client = SignerClient(address, timeout_s=30)
        try:
            yield client, paths
        finally:
            client.close()


@pytest.fixture(scope="module")
def genuine(signer_process: SignerProcess) -> Iterator[SignerClient]:
    client = SignerClient(signer_process.grpc_address, timeout_s=30)
    yield client
    client.close()


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lre-verify"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _newer_seal_certificate(signer_process: SignerProcess) -> bytes:
    """A seal certificate the provider renewed to (its key elsewhere): the
    bundle's becomes a retired one."""
    pki_dir = signer_process.paths.pki
    ca = pki.LocalCA.load(pki_dir / "root-ca.key", pki_dir / "root-ca.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LRE Seal 2027")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    der = ca.issue(csr, pki.SEAL)
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def test_a_forgery_by_another_subscriber_of_the_same_root_is_invalid(
    signer_process: SignerProcess,
    genuine: SignerClient,
    mallory: tuple[SignerClient, DevPaths],
    tmp_path: Path,
) -> None:
    forger, forger_paths = mallory
    pki_dir = signer_process.paths.pki
    # Same root, same subject names, other keys and certificates.
    assert (forger_paths.pki / "root-ca.pem").read_bytes() == signer_process.root_ca.read_bytes()
    assert (forger_paths.pki / "seal.pem").read_bytes() != (pki_dir / "seal.pem").read_bytes()
    provider = tmp_path / "provider-certificates.pem"
    provider.write_bytes(
        (pki_dir / "seal.pem").read_bytes() + (pki_dir / "timestamping.pem").read_bytes()
    )
    forged, real = tmp_path / "forged.zip", tmp_path / "genuine.zip"
    forged.write_bytes(build_test_bundle(forger, PROVIDER))
    real.write_bytes(build_test_bundle(genuine, PROVIDER))

    # Under the root alone, the forgery chains like the genuine bundle: that
    # is why the root alone never gives VALID.
    root_only = _cli(forged, "--trust", signer_process.root_ca)
    assert root_only.returncode == 1 and "FAIL" not in root_only.stdout, root_only.stdout

    result = _cli(forged, "--trust", signer_process.root_ca, "--provider", provider)
    assert result.returncode == 1, result.stdout
    assert result.stdout.splitlines()[-1] == "INVALID" and result.stderr == ""
    for check in (
        "evidence seal: the provider's seal",
        "evidence seal: the provider's TSA",
        "tree head seal: the provider's seal",
        "proof PDF: the provider's seal",
    ):
        assert f"FAIL  {check}: " in result.stdout, (check, result.stdout)
    assert "not one of the provider's seal certificates" in result.stdout
    assert "not a timestamp authority the provider declared" in result.stdout
    # Said at once: whom the bundle claims, and that its seal is not one the
    # provider declared, right after the bundle's own checks.
    claimed = result.stdout.splitlines()[2]
    assert claimed.startswith(f"FAIL  provider claimed: claims to be from {PROVIDER}, "), claimed
    assert "not one the provider declared" in claimed

    # The forger copies the genuine bundle's claim into its manifest: the
    # signers are not the claimed provider's, even with no --provider given.
    genuine_claim = json.loads(_members(real)["manifest.json"])["provider"]
    copied = _members(forged)
    manifest = json.loads(copied["manifest.json"])
    manifest["provider"] = genuine_claim
    copied["manifest.json"] = json.dumps(manifest).encode()
    claiming = tmp_path / "claiming.zip"
    claiming.write_bytes(zip_members(copied))
    result = _cli(claiming, "--trust", signer_process.root_ca)
    assert result.returncode == 1 and result.stdout.splitlines()[-1] == "INVALID", result.stdout
    assert "FAIL  provider claimed: " in result.stdout.splitlines()[2], result.stdout
    # The chains themselves are fine: the finding is whose they are.
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not [line for line in failed if "certificate chains" in line], failed

    ok = _cli(real, "--trust", signer_process.root_ca, "--provider", provider)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "VALID", ok.stdout

    # The provider renewed its seal: the declared set holds the new one and
    # the retired one. The genuine bundle (retired seal) stays VALID; the
    # forgery is still not the provider's.
    renewed = tmp_path / "renewed.pem"
    renewed.write_bytes(_newer_seal_certificate(signer_process) + provider.read_bytes())
    ok = _cli(real, "--trust", signer_process.root_ca, "--provider", renewed)
    assert ok.returncode == 0, ok.stdout
    assert "sealed by the provider's seal certificate" in ok.stdout
    refused = _cli(forged, "--trust", signer_process.root_ca, "--provider", renewed)
    assert refused.returncode == 1 and "FAIL  evidence seal: the provider's seal" in refused.stdout


def test_verify_export_holds_every_seal_to_the_provider(
    world: World,
    signer_process: SignerProcess,
    mallory: tuple[SignerClient, DevPaths],
    tmp_path: Path,
) -> None:
    """An export whose tree heads another subscriber of the same root resealed
    (the manifest recomputed, as a forger would): under the anchors alone it
    verifies; with the provider's certificates it is refused, naming each
    head; the genuine export passes, also with a renewed seal declared
    beside the retired one that sealed it."""
    forger, _paths = mallory
    pki_dir = signer_process.paths.pki
    start = world.clock.now
    for _ in range(2):
        world.deposit()
        world.clock.advance(seconds=1)
    events = EventLog(world.stores, world.clock, world.signer, PROVIDER)
    events.sequence()
    assert events.seal_head() is not None
    genuine_out, forged_out = tmp_path / "genuine", tmp_path / "forged"
    archive.export(world.engine, start, world.clock.now, genuine_out, signer_process.root_ca)
    shutil.copytree(genuine_out, forged_out)
    manifest = json.loads((forged_out / archive.MANIFEST).read_bytes())
    heads = sorted((forged_out / "heads").glob("*.json"))
    for head in heads:
        seal = head.with_suffix(".p7m")
        seal.write_bytes(forger.seal(head.read_bytes()))
        manifest["files"][f"heads/{seal.name}"] = hashlib.sha256(seal.read_bytes()).hexdigest()
    (forged_out / archive.MANIFEST).write_text(json.dumps(manifest))

    root = signer_process.root_ca
    assert archive.verify_export(forged_out, root).ok  # the root certifies the forger too
    declared = tmp_path / "provider-certificates.pem"
    declared.write_bytes(
        (pki_dir / "seal.pem").read_bytes() + (pki_dir / "timestamping.pem").read_bytes()
    )
    refused = archive.verify_export(forged_out, root, declared)
    assert refused.findings == [
        f"tree head {h.stem}: its seal is sealed by a certificate that is not one of the "
        "provider's seal certificates"
        for h in heads
    ], refused.findings
    assert archive.verify_export(genuine_out, root, declared).ok

    renewed = tmp_path / "renewed.pem"
    renewed.write_bytes(_newer_seal_certificate(signer_process) + declared.read_bytes())
    assert archive.verify_export(genuine_out, root, renewed).ok
    assert not archive.verify_export(forged_out, root, renewed).ok
    # Not vacuous: without the retired seal declared, the genuine export is
    # not the (renewed) provider's either.
    only_new = tmp_path / "only-new.pem"
    only_new.write_bytes(
        _newer_seal_certificate(signer_process) + (pki_dir / "timestamping.pem").read_bytes()
    )
    assert not archive.verify_export(genuine_out, root, only_new).ok
