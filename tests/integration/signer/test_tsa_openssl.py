"""RFC 3161 over HTTP and gRPC, checked by openssl as an independent client."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from asn1crypto import tsp

from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.asn1 import TimeStampResp, timestamp_request
from tests.support.pki import openssl, ts_verify
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import SignerProcess, signer_env


def post_query(
    signer: SignerProcess, body: bytes, content_type: str = "application/timestamp-query"
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        signer.http_url + "/tsa", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "letter.pdf"
    path.write_bytes(b"%PDF-1.7 registered letter " + bytes(range(256)))
    return path


@pytest.mark.parametrize(
    "query_args",
    [["-cert"], ["-cert", "-no_nonce"], [], ["-no_nonce"]],
    ids=["certReq+nonce", "certReq", "nonce", "bare"],
)
def test_openssl_query_gets_a_token_that_openssl_verifies(
    signer_process: SignerProcess, document: Path, tmp_path: Path, query_args: list[str]
) -> None:
    query, reply = tmp_path / "q.tsq", tmp_path / "r.tsr"
    assert (
        openssl("ts", "-query", "-data", document, "-sha256", *query_args, "-out", query).returncode
        == 0
    )
    status, content_type, body = post_query(signer_process, query.read_bytes())
    assert (status, content_type) == (200, "application/timestamp-reply")
    reply.write_bytes(body)
    assert ts_verify(document, reply, signer_process.root_ca, signer_process.tsa_cert)
    text = openssl("ts", "-reply", "-in", reply, "-text").stdout
    assert "Policy OID: 0.4.0.2023.1.1" in text
    assert "Accuracy: 0x01 seconds" in text
    # The token carries the TSA certificate exactly when certReq asked for it.
    token = tsp.TimeStampResp.load(body)["time_stamp_token"]["content"]
    assert (len(token["certificates"]) == 1) == ("-cert" in query_args)
    # The nonce comes back when sent.
    nonce_sent = tsp.TimeStampReq.load(query.read_bytes())["nonce"].native
    tst_info = token["encap_content_info"]["content"].parsed
    assert tst_info["nonce"].native == nonce_sent
    # ESSCertIDv2 names the TSA certificate by its SHA-256.
    signed_attrs = {
        a["type"].native: a["values"][0] for a in token["signer_infos"][0]["signed_attrs"]
    }
    signing_cert = signed_attrs["signing_certificate_v2"]["certs"][0]
    tsa_der = subprocess.run(
        ["openssl", "x509", "-in", str(signer_process.tsa_cert), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert signing_cert["cert_hash"].native == hashlib.sha256(tsa_der).digest()


def test_a_tampered_document_does_not_verify(
    signer_process: SignerProcess, document: Path, tmp_path: Path
) -> None:
    query, reply = tmp_path / "q.tsq", tmp_path / "r.tsr"
    openssl("ts", "-query", "-data", document, "-sha256", "-cert", "-out", query)
    reply.write_bytes(post_query(signer_process, query.read_bytes())[2])
    document.write_bytes(document.read_bytes() + b"!")
    assert not ts_verify(document, reply, signer_process.root_ca, signer_process.tsa_cert)


def test_serials_are_unique_and_positive(signer_process: SignerProcess) -> None:
    serials = set()
    for i in range(50):
        request = timestamp_request(hashlib.sha256(str(i).encode()).digest())
        body = post_query(signer_process, request)[2]
        serial = (
            tsp.TimeStampResp.load(body)["time_stamp_token"]["content"]["encap_content_info"][
                "content"
            ]
            .parsed["serial_number"]
            .native
        )
        assert serial > 0
        serials.add(serial)
    assert len(serials) == 50


def test_a_nonce_of_up_to_256_bits_comes_back_in_the_token(signer_process: SignerProcess) -> None:
    for nonce in ((1 << 256) - 1, -(1 << 255)):
        body = post_query(signer_process, timestamp_request(b"\x03" * 32, nonce=nonce))[2]
        token = tsp.TimeStampResp.load(body)["time_stamp_token"]
        info = token["content"]["encap_content_info"]["content"].parsed
        assert info["nonce"].native == nonce


BAD_REQUESTS = {
    "garbage": (b"this is not DER at all", "bad_data_format"),
    "truncated": (timestamp_request(b"\x01" * 32)[:-7], "bad_data_format"),
    "trailing-bytes": (timestamp_request(b"\x01" * 32) + b"\x00", "bad_data_format"),
    "empty": (b"", "bad_data_format"),
    "sha1": (timestamp_request(b"\x01" * 20, "sha1"), "bad_alg"),
    "md5": (timestamp_request(b"\x01" * 16, "md5"), "bad_alg"),
    "short-sha256": (timestamp_request(b"\x01" * 31), "bad_data_format"),
    "long-sha384": (timestamp_request(b"\x01" * 64, "sha384"), "bad_data_format"),
    "other-policy": (timestamp_request(b"\x01" * 32, req_policy="1.2.3.4"), "unaccepted_policy"),
    "long-nonce": (timestamp_request(b"\x01" * 32, nonce=1 << 256), "bad_request"),
    "deep-nesting": (b"\x30\x80" * 5000, "bad_data_format"),
    "huge-length": (b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 100, "bad_data_format"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_requests_get_a_rejection_over_http(signer_process: SignerProcess, name: str) -> None:
    body, fail_info = BAD_REQUESTS[name]
    status, content_type, reply = post_query(signer_process, body)
    assert (status, content_type) == (200, "application/timestamp-reply")
    response = TimeStampResp.load(reply)
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {fail_info}
    assert not response["time_stamp_token"].native
    assert health_status(signer_process.grpc_address) == SERVING


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_requests_are_invalid_argument_over_grpc(
    signer_process: SignerProcess, name: str
) -> None:
    body, fail_info = BAD_REQUESTS[name]
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Timestamp(signing_pb2.TimestampRequest(time_stamp_req=body), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fail_info in (raised.value.details() or "")
        # and it keeps serving
        good = stub.Timestamp(
            signing_pb2.TimestampRequest(time_stamp_req=timestamp_request(b"\x02" * 32)), timeout=10
        )
        assert tsp.TimeStampResp.load(good.time_stamp_resp)["status"]["status"].native == "granted"


def test_http_refuses_other_content_types_and_oversized_bodies(
    signer_process: SignerProcess,
) -> None:
    assert (
        post_query(signer_process, timestamp_request(b"\x01" * 32), "application/octet-stream")[0]
        == 415
    )
    assert post_query(signer_process, b"\x00" * (64 * 1024))[0] == 413


def test_qualified_mode_adds_the_etsi_qc_statement(dev_var, tmp_path: Path, document: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(dev_var, grpc_port, http_port, LRE_SIGNER_QUALIFIED="true")
    with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log"):
        signer = SignerProcess(
            f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", dev_var, tmp_path
        )
        assert wait_for(lambda: health_status(signer.grpc_address) == SERVING)
        query, reply = tmp_path / "q.tsq", tmp_path / "r.tsr"
        openssl("ts", "-query", "-data", document, "-sha512", "-cert", "-out", query)
        reply.write_bytes(post_query(signer, query.read_bytes())[2])
    assert ts_verify(document, reply, signer.root_ca, signer.tsa_cert)
    info = tsp.TimeStampResp.load(reply.read_bytes())["time_stamp_token"]["content"][
        "encap_content_info"
    ]["content"].parsed
    (extension,) = info["extensions"]
    assert extension["extn_id"].dotted == "1.3.6.1.5.5.7.1.3"
    assert extension["critical"].native is False
    assert extension["extn_value"].native == bytes.fromhex(
        "300b30090607040081975e0101"
    )  # esi4-qtstStatement-1
