"""The server's signer client against the real signer process."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from lre.server.adapters.signer import SignerClient
from lre.server.domain.errors import DependencyUnavailable
from tests.support.pki import openssl
from tests.support.processes import free_port
from tests.support.signer import SignerProcess


def test_seal_wrap_and_chain(signer_process: SignerProcess, tmp_path: Path) -> None:
    client = SignerClient(signer_process.grpc_address)
    try:
        assert client.serving()
        sealed = tmp_path / "evidence.p7m"
        sealed.write_bytes(client.seal(b'{"event":"SubmissionAcceptance"}'))
        verify = openssl(
            "cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer_process.root_ca
        )
        assert verify.returncode == 0, verify.stderr
        key = bytes(32)
        wrapped = client.wrap_key(key, b"letters/1")
        assert client.unwrap_key(wrapped, b"letters/1") == key
        with pytest.raises(grpc.RpcError) as raised:
            client.unwrap_key(wrapped, b"letters/2")
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(client.certificate_chain("seal")) == 2
    finally:
        client.close()


def test_an_absent_signer_is_a_dependency_unavailable() -> None:
    client = SignerClient(f"127.0.0.1:{free_port()}", timeout_s=2)
    try:
        assert not client.serving()
        with pytest.raises(DependencyUnavailable):
            client.seal(b"evidence")
    finally:
        client.close()
