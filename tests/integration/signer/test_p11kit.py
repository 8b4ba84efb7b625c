"""The HSM sidecar path: the signer's PKCS#11 module is p11-kit-client.so,
talking over a unix socket to `p11-kit server` in front of SoftHSM (as a
container without the vendor library would reach an HSM client next to it).
Timestamps and seals go through it and openssl verifies them.

Key wrapping does not, with the p11-kit of Debian 12 (0.24.1), under either
wrap mechanism: its RPC layer lists to the client only the mechanisms it knows
how to forward, and neither CKM_AES_GCM (CK_GCM_PARAMS is serialised from
p11-kit 0.25, PR #415) nor CKM_AES_KEY_WRAP or CKM_AES_KEY_WRAP_PAD (no
parameters, but not in 0.24's list) is among them. Of SoftHSM's secret-key
mechanisms it forwards AES_ECB, AES_KEY_GEN, the SHA HMACs and
GENERIC_SECRET_KEY_GEN (the last test). The tests pin that: when one fails
because wrapping works, p11-kit has caught up.

AES_ECB is enough for `wrap_mechanism = "aes-kw-ecb"`: the signer chains RFC
3394 key wrap from single AES blocks the token computes, so with it the
sidecar path is complete (check-token passes, and the blobs are those that
CKM_AES_KEY_WRAP makes on the token directly).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lre.signer.devsetup import DevPaths, softhsm_module
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl, ts_verify
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import check_token, signer, signer_env, unwrap

CLIENT_MODULES = (
    Path("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"),
    Path("/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so"),
    Path("/usr/lib/pkcs11/p11-kit-client.so"),
)


@pytest.fixture
def p11kit(token_copy: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`p11-kit server` exporting the token copy; the settings that reach it."""
    client = next((m for m in CLIENT_MODULES if m.exists()), None)
    if shutil.which("p11-kit") is None or client is None:
        if os.environ.get("CI"):
            pytest.fail("p11-kit and p11-kit-client.so are required under CI (system-deps.sh)")
        pytest.skip("p11-kit and p11-kit-client.so are needed (Debian: p11-kit, p11-kit-modules)")
    socket = tmp_path / "p11kit.sock"
    command = [
        "p11-kit", "server", "--foreground", "--name", str(socket),
        "--provider", str(softhsm_module()), "pkcs11:token=lre",
    ]  # fmt: skip
    with running(command, {"SOFTHSM2_CONF": str(token_copy)}, tmp_path / "p11kit.log"):
        assert wait_for(socket.exists), (tmp_path / "p11kit.log").read_text()
        yield {
            "LRE_SIGNER_PKCS11_MODULE": str(client),
            "P11_KIT_SERVER_ADDRESS": f"unix:path={socket}",
            # Nothing of SoftHSM on the signer's side: only the socket.
            "SOFTHSM2_CONF": "/nonexistent/softhsm2.conf",
        }


@pytest.mark.parametrize(
    ("wrap_mechanism", "mechanism"), [("aes-gcm", "AES_GCM"), ("aes-kw", "AES_KEY_WRAP")]
)
def test_check_token_through_p11kit_passes_the_signing_checks_and_names_the_gap(
    dev_var: DevPaths,
    p11kit: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    wrap_mechanism: str,
    mechanism: str,
) -> None:
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", p11kit["P11_KIT_SERVER_ADDRESS"])
    code, lines, output = check_token(
        dev_var,
        Path(p11kit["SOFTHSM2_CONF"]),
        pkcs11_module=p11kit["LRE_SIGNER_PKCS11_MODULE"],
        wrap_mechanism=wrap_mechanism,
    )
    assert code == 1, output
    assert lines["module"].startswith("OK ") and "PKCS#11 Kit" in lines["module"]
    failed = {what: line for what, line in lines.items() if line.startswith("FAIL")}
    assert failed == {
        f"mechanism {mechanism}": (
            "FAIL not offered by the token (needed for wrapping content keys)"
        ),
        "key lre-wrap": "FAIL token error during wrap: MechanismInvalid",
    }, output
    assert len(lines) == 13  # every check ran


def test_the_signer_through_p11kit_timestamps_and_seals(
    dev_var: DevPaths, p11kit: dict[str, str], tmp_path: Path
) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = {**signer_env(dev_var, grpc_port, http_port), **p11kit}
    log = tmp_path / "signer.log"
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address) == SERVING), log.read_text()
        # A timestamp over HTTP (RFC 3161), verified by openssl.
        document = tmp_path / "letter.pdf"
        document.write_bytes(b"%PDF-1.7 through p11-kit " + bytes(range(256)))
        query, reply = tmp_path / "q.tsq", tmp_path / "r.tsr"
        assert (
            openssl("ts", "-query", "-data", document, "-sha256", "-cert", "-out", query).returncode
            == 0
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/tsa",
            data=query.read_bytes(),
            headers={"Content-Type": "application/timestamp-query"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            reply.write_bytes(answer.read())
        pki = dev_var.pki
        assert ts_verify(document, reply, pki / "root-ca.pem", pki / "timestamping.pem")
        # A seal (CAdES, with its own timestamp), verified by openssl.
        with grpc.insecure_channel(address) as ch:
            stub = signing_pb2_grpc.SigningServiceStub(ch)
            evidence = b'{"event":"SubmissionAcceptance","letter":"letters/p11kit"}'
            sealed = stub.SealEvidence(
                signing_pb2.SealEvidenceRequest(content=evidence), timeout=10
            )
            (tmp_path / "evidence.p7m").write_bytes(sealed.signed_data)
            verified = openssl(
                "cms", "-verify", "-inform", "DER", "-in", tmp_path / "evidence.p7m",
                "-CAfile", pki / "root-ca.pem",
            )  # fmt: skip
            assert verified.returncode == 0, verified.stderr
            assert verified.stdout.encode() == evidence
            # The gap (see the module's docstring): no AES-GCM through p11-kit 0.24.
            with pytest.raises(grpc.RpcError) as wrapped:
                stub.WrapKey(signing_pb2.WrapKeyRequest(key=b"k" * 32, context=b"letters/1"))
            assert wrapped.value.code() == grpc.StatusCode.UNAVAILABLE


def test_what_p11kit_forwards_of_the_secret_key_mechanisms(p11kit: dict[str, str]) -> None:
    """The exact list, so that a p11-kit upgrade that forwards more shows here."""
    script = (
        "import sys, pkcs11\n"
        "slot = pkcs11.lib(sys.argv[1]).get_token(token_label='lre').slot\n"
        "print(' '.join(sorted(getattr(m, 'name', hex(m)) for m in slot.get_mechanisms())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, p11kit["LRE_SIGNER_PKCS11_MODULE"]],
        env={**os.environ, **p11kit},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    offered = set(done.stdout.split())
    aes = {m for m in offered if m.startswith(("AES", "GENERIC"))}
    assert aes == {"AES_ECB", "AES_KEY_GEN", "GENERIC_SECRET_KEY_GEN"}, offered
    assert {"ECDSA", "EC_KEY_PAIR_GEN"} <= offered


def test_with_aes_kw_ecb_the_sidecar_path_is_complete(
    dev_var: DevPaths,
    token_copy: Path,
    p11kit: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", p11kit["P11_KIT_SERVER_ADDRESS"])
    code, lines, output = check_token(
        dev_var,
        Path(p11kit["SOFTHSM2_CONF"]),
        pkcs11_module=p11kit["LRE_SIGNER_PKCS11_MODULE"],
        wrap_mechanism="aes-kw-ecb",
    )
    assert code == 0, output
    assert lines["mechanism AES_ECB"] == "OK ENCRYPT and DECRYPT for wrapping content keys"

    through = {"wrap_mechanism": "aes-kw-ecb", "pkcs11_module": p11kit["LRE_SIGNER_PKCS11_MODULE"]}
    remote = {k: v for k, v in p11kit.items() if k != "LRE_SIGNER_PKCS11_MODULE"}
    with signer(dev_var, token_copy, tmp_path / "p11kit-signer.log", remote, **through) as stub:
        key = bytes(range(32))
        wrapped = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=key, context=b"letters/1"), timeout=10
        ).wrapped_key
        assert unwrap(stub, wrapped, b"letters/1") == key
        with pytest.raises(grpc.RpcError) as wrong:
            unwrap(stub, wrapped, b"letters/2")
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The token's own CKM_AES_KEY_WRAP, without p11-kit, reads the blob.
    with signer(dev_var, token_copy, tmp_path / "direct.log", wrap_mechanism="aes-kw") as stub:
        assert unwrap(stub, wrapped, b"letters/1") == key
