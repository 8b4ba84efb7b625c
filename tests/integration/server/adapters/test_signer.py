"""The server's signer client against the real signer process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import pytest

from lre.runtime import jsonlines
from lre.runtime.gate import REQUEST_ID_KEY
from lre.server.adapters.signer import SignerClient
from lre.server.domain.errors import DependencyUnavailable
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl
from tests.support.processes import free_port, wait_for
from tests.support.rpc import field_violations
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


def test_the_request_id_reaches_the_signer_and_comes_back(signer_process: SignerProcess) -> None:
    rid = f"req-{uuid.uuid4()}"
    client = SignerClient(signer_process.grpc_address)
    token = jsonlines.request_id.set(rid)  # as while the server serves a call with that id
    try:
        client.seal(b'{"event":"SubmissionAcceptance"}')
        client.seal_many([b"{}", b"{}"])
    finally:
        jsonlines.request_id.reset(token)
        client.close()
    assert wait_for(lambda: signer_process.log.read_text().count(rid) >= 3)
    lines = [
        json.loads(line) for line in signer_process.log.read_text().splitlines() if rid in line
    ]
    assert {(e["message"], e["request_id"]) for e in lines} == {("rpc", rid)}

    # Every caller gets the id back in the trailers, refused calls too.
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        _, call = stub.GetCertificateChain.with_call(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_SEAL),
            metadata=((REQUEST_ID_KEY, "mine-1"),),
            timeout=10,
        )
        assert (REQUEST_ID_KEY, "mine-1") in call.trailing_metadata()
        with pytest.raises(grpc.RpcError) as raised:
            stub.UnwrapKey(signing_pb2.UnwrapKeyRequest(wrapped_key=b"x"), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        trailers = raised.value.trailing_metadata()  # type: ignore[attr-defined]
        given = {str(m.key): str(m.value) for m in trailers}
        assert field_violations(raised.value)  # beside the rich status
        assert uuid.UUID(given[REQUEST_ID_KEY])  # none sent: one made
        assert given[REQUEST_ID_KEY] in signer_process.log.read_text()


def test_polling_the_certificate_chains_leaves_no_log_line(signer_process: SignerProcess) -> None:
    """The server reads both chains with every look at the signer (seconds
    apart): at INFO that was most of an idle stack's log."""
    polled, sealed = f"poll-{uuid.uuid4()}", f"seal-{uuid.uuid4()}"
    client = SignerClient(signer_process.grpc_address)
    try:
        for rid, call in (
            (polled, lambda: client.certificate_chain("seal")),
            (sealed, lambda: client.seal(b"{}")),
        ):
            token = jsonlines.request_id.set(rid)
            try:
                call()
            finally:
                jsonlines.request_id.reset(token)
    finally:
        client.close()
    # The seal after the poll is logged; the poll before it is not.
    assert wait_for(lambda: sealed in signer_process.log.read_text())
    assert polled not in signer_process.log.read_text()
