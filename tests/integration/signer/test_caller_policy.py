"""The signer's caller policy against the real signer over mutual TLS: every
RPC of SigningService x every certificate `make run` issues gets exactly what
is written here (independently of signer/lre/signer/policy.py, so that loosening one
line there fails), and forgeries are refused: a portal sealing made-up evidence, an
auditor unwrapping a letter's key, a certificate for the server's name from another CA."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import symbol_database

from lre.dev.tls import CALLERS, SERVER_CLIENT, TlsFiles, create_dev_tls
from lre.signer.devsetup import DevPaths
from lre.signer.policy import POLICY
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, channel, health_status

SERVICE = signing_pb2.DESCRIPTOR.services_by_name["SigningService"]
_S = f"/{SERVICE.full_name}/"
# What uses the seal or the wrap key, and what is public in substance.
KEYS = {
    _S + m
    for m in (
        "SealEvidence",
        "WrapKey",
        "WrapKeys",
        "UnwrapKey",
        "RewrapKeys",
        "SignPdf",
        "SignPdfDigest",
    )
}
PUBLIC = {_S + m for m in ("Timestamp", "GetCertificateChain", "GetPdfValidationData")}
OK_WHEN_EMPTY = {_S + "GetPdfValidationData": grpc.StatusCode.OK}
# Every certificate `make run` issues (common/lre/dev/tls.py), by file name, and
# what it may call under the default settings.
CERTIFICATES = [d.split(".")[0] for d in [SERVER_CLIENT, *CALLERS]]
EXPECTED = {
    "server": KEYS | PUBLIC,
    "operator": PUBLIC,
    "auditor": PUBLIC,
    "sender-gateway": set(),
    "recipient-portal": set(),
}


def _methods() -> list[tuple[str, object]]:
    return [
        (
            _S + method.name,
            symbol_database.Default().GetSymbol(method.input_type.full_name),
        )
        for method in SERVICE.methods
    ]


def _tls_env(tls: TlsFiles) -> dict[str, str]:
    return {
        "LRE_SIGNER_TLS_CERT_FILE": str(tls.service_cert),
        "LRE_SIGNER_TLS_KEY_FILE": str(tls.service_key),
        "LRE_SIGNER_TLS_CLIENT_CA_FILE": str(tls.ca),
        "LRE_SIGNER_REQUIRE_TLS": "true",
    }


@pytest.fixture(scope="module")
def signer_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy") / "signer.log"


@pytest.fixture(scope="module")
def signer(dev_var: DevPaths, tls: TlsFiles, signer_log: Path) -> Iterator[str]:
    """The real signer with `make run`'s mutual TLS and the default callers."""
    grpc_port, http_port = free_port(), free_port()
    log = signer_log
    env = {
        "LRE_CONFIG": str(dev_var.config),
        "SOFTHSM2_CONF": str(dev_var.softhsm_conf.resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        **_tls_env(tls),
    }
    # signer_callers and timestamp_callers: the defaults are under test.
    with running([str(BIN / "lre-signer"), "serve"], env, log):
        address = f"127.0.0.1:{grpc_port}"
        assert wait_for(lambda: health_status(address, tls=tls, caller="auditor") == SERVING), (
            log.read_text()
        )
        yield address


def _call(ch: grpc.Channel, method: str, request: object) -> grpc.StatusCode:
    identity = lambda b: b  # noqa: E731
    try:
        ch.unary_unary(method, identity, identity)(
            request().SerializeToString(),  # type: ignore[operator]
            timeout=10,
        )
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_the_policy_and_this_test_name_every_rpc_of_the_signer() -> None:
    methods = {m for m, _ in _methods()}
    assert set(POLICY) == methods
    # A new RPC fails here until this test (and the table) decides who may call it.
    assert methods == KEYS | PUBLIC and not KEYS & PUBLIC
    assert set(EXPECTED) == set(CERTIFICATES)


def test_every_rpc_under_every_certificate_gets_what_is_written_here(
    signer: str, tls: TlsFiles
) -> None:
    seen = {}
    for caller in CERTIFICATES:
        with channel(signer, tls, caller) as ch:
            for method, request in _methods():
                seen[caller, method] = _call(ch, method, request)
    for (caller, method), code in seen.items():
        if method in EXPECTED[caller]:
            # Let through: the empty request itself is judged (and is all
            # GetPdfValidationData asks).
            answered = OK_WHEN_EMPTY.get(method, grpc.StatusCode.INVALID_ARGUMENT)
            assert code == answered, (caller, method, code)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (caller, method, code)


def test_a_portal_cannot_forge_evidence_nor_the_auditor_open_a_letter(
    signer: str, tls: TlsFiles, signer_log: Path
) -> None:
    forged = b"<ConsignmentAcceptance><letter>letters/1</letter></ConsignmentAcceptance>"
    context = b"letters/1/content"
    with channel(signer, tls, "server") as server:
        stub = signing_pb2_grpc.SigningServiceStub(server)
        wrapped = stub.WrapKey(signing_pb2.WrapKeyRequest(key=b"k" * 32, context=context))
        # The server itself may (the key and the call are real).
        assert stub.UnwrapKey(
            signing_pb2.UnwrapKeyRequest(wrapped_key=wrapped.wrapped_key, context=context)
        ).key == (b"k" * 32)
    for caller in ("recipient-portal", "sender-gateway", "operator", "auditor"):
        with channel(signer, tls, caller) as ch:
            stub = signing_pb2_grpc.SigningServiceStub(ch)
            with pytest.raises(grpc.RpcError) as sealed:
                stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=forged))
            assert sealed.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert sealed.value.details() == f"{caller}.lre.internal may not call SealEvidence"
            with pytest.raises(grpc.RpcError) as opened:
                stub.UnwrapKey(
                    signing_pb2.UnwrapKeyRequest(wrapped_key=wrapped.wrapped_key, context=context)
                )
            assert opened.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Each refusal is logged for the operators, with who and what.
    refused = [
        json.loads(line) for line in signer_log.read_text().splitlines() if "refused" in line
    ]
    assert {
        "caller": "auditor.lre.internal",
        "method": "UnwrapKey",
    }.items() <= refused[-1].items()


def test_a_server_name_from_another_ca_is_refused_at_the_handshake(
    signer: str, tls: TlsFiles, tmp_path: Path
) -> None:
    foreign = create_dev_tls(tmp_path / "foreign")
    forged = TlsFiles(tmp_path / "forged")
    forged.root.mkdir()
    forged.ca.write_bytes(tls.ca.read_bytes())  # trusts the real signer
    for suffix in ("pem", "key"):  # but presents "server.lre.internal" of another CA
        (forged.root / f"server.{suffix}").write_bytes(
            (foreign.root / f"server.{suffix}").read_bytes()
        )
    with channel(signer, forged, "server") as ch:
        assert _call(ch, _S + "SealEvidence", signing_pb2.SealEvidenceRequest) == (
            grpc.StatusCode.UNAVAILABLE
        )
    assert health_status(signer) is None  # plaintext
    assert health_status(signer, tls=tls) is None  # no client certificate


@pytest.mark.parametrize("missing", ["LRE_SIGNER_TLS_CLIENT_CA_FILE", "LRE_SIGNER_TLS_CERT_FILE"])
def test_require_tls_refuses_to_start_without_mutual_tls(
    dev_var: DevPaths, tls: TlsFiles, missing: str
) -> None:
    env = {
        **os.environ,
        "LRE_CONFIG": str(dev_var.config),
        "SOFTHSM2_CONF": str(dev_var.softhsm_conf.resolve()),
        "LRE_SIGNER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SIGNER_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        **_tls_env(tls),
    }
    del env[missing]
    started = subprocess.run(
        [str(BIN / "lre-signer"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 1
    assert started.stderr.startswith("lre-signer: LRE_SIGNER_REQUIRE_TLS"), started.stderr
    assert "Traceback" not in started.stderr
