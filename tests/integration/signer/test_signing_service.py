"""SigningService over gRPC against the real signer process and SoftHSM."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from asn1crypto import cms, x509
from pkcs11 import ObjectClass

from lre.signer.config import SignerSettings
from lre.signer.token import Token
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl, ts_verify
from tests.support.signer import SignerProcess


@pytest.fixture
def stub(signer_process: SignerProcess) -> Iterator[signing_pb2_grpc.SigningServiceStub]:
    with grpc.insecure_channel(signer_process.grpc_address) as channel:
        yield signing_pb2_grpc.SigningServiceStub(channel)


def test_sealed_evidence_verifies_with_openssl_cms_and_its_timestamp_with_openssl_ts(
    stub: signing_pb2_grpc.SigningServiceStub, signer_process: SignerProcess, tmp_path: Path
) -> None:
    document = (
        b'{"event":"http://uri.etsi.org/19522/Event/SubmissionAcceptance","letter":"letters/1"}'
    )
    reply = stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=document), timeout=10)
    sealed = tmp_path / "evidence.p7m"
    sealed.write_bytes(reply.signed_data)

    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer_process.root_ca
    )
    assert verify.returncode == 0, verify.stderr
    assert "Verification successful" in verify.stderr
    assert verify.stdout.encode() == document

    signer_info = cms.ContentInfo.load(reply.signed_data)["content"]["signer_infos"][0]
    signed = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
    assert set(signed) == {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
    }
    assert signed["signing_time"].native == reply.signing_time.ToDatetime().replace(
        tzinfo=signed["signing_time"].native.tzinfo
    )
    seal_cert = x509.Certificate.load(
        stub.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_SEAL)
        ).certificates[0]
    )
    assert (
        signed["signing_certificate_v2"]["certs"][0]["cert_hash"].native
        == hashlib.sha256(seal_cert.dump()).digest()
    )

    # B-T: the signature timestamp covers the signature value.
    unsigned = signer_info["unsigned_attrs"][0]
    assert unsigned["type"].native == "signature_time_stamp_token"
    (tmp_path / "signature.bin").write_bytes(signer_info["signature"].native)
    (tmp_path / "token.tst").write_bytes(unsigned["values"][0].dump())
    assert ts_verify(
        tmp_path / "signature.bin",
        tmp_path / "token.tst",
        signer_process.root_ca,
        signer_process.tsa_cert,
        token_in=True,
    )


def test_a_changed_evidence_fails_openssl_verification(
    stub: signing_pb2_grpc.SigningServiceStub, signer_process: SignerProcess, tmp_path: Path
) -> None:
    reply = stub.SealEvidence(
        signing_pb2.SealEvidenceRequest(content=b"original evidence"), timeout=10
    )
    tampered = reply.signed_data.replace(b"original evidence", b"modified evidence")
    (tmp_path / "e.p7m").write_bytes(tampered)
    verify = openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        tmp_path / "e.p7m",
        "-CAfile",
        signer_process.root_ca,
    )
    assert verify.returncode != 0


def test_empty_evidence_is_invalid_argument(stub: signing_pb2_grpc.SigningServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=b""), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_certificate_chains_end_at_the_root(
    stub: signing_pb2_grpc.SigningServiceStub, signer_process: SignerProcess
) -> None:
    root_pem = signer_process.root_ca.read_bytes()
    for purpose in (signing_pb2.KEY_PURPOSE_SEAL, signing_pb2.KEY_PURPOSE_TIMESTAMPING):
        chain = stub.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=purpose)
        ).certificates
        assert len(chain) == 2
        root = x509.Certificate.load(chain[-1])
        assert root.self_signed == "maybe" or root.self_signed == "yes"
        assert root.subject == x509.Certificate.load(chain[0]).issuer
        assert b"BEGIN CERTIFICATE" in root_pem
    tsa = x509.Certificate.load(
        stub.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_TIMESTAMPING)
        ).certificates[0]
    )
    assert tsa.extended_key_usage_value.native == ["time_stamping"]
    assert "extended_key_usage" in tsa.critical_extensions
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCertificateChain(signing_pb2.GetCertificateChainRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_wrapped_keys_unwrap_only_under_their_context(
    stub: signing_pb2_grpc.SigningServiceStub,
) -> None:
    key = bytes(range(32))
    wrapped = stub.WrapKey(
        signing_pb2.WrapKeyRequest(key=key, context=b"letters/42"), timeout=10
    ).wrapped_key
    assert key not in wrapped
    assert (
        stub.UnwrapKey(signing_pb2.UnwrapKeyRequest(wrapped_key=wrapped, context=b"letters/42")).key
        == key
    )
    for bad_wrapped, context in (
        (wrapped, b"letters/43"),
        (wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"letters/42"),
        (b"\x01short", b"letters/42"),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            stub.UnwrapKey(
                signing_pb2.UnwrapKeyRequest(wrapped_key=bad_wrapped, context=context), timeout=10
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for bad in (
        signing_pb2.WrapKeyRequest(key=b"short", context=b"x"),
        signing_pb2.WrapKeyRequest(key=key),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            stub.WrapKey(bad, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_keys_wrapped_in_one_call_each_unwrap_under_their_own_context_only(
    stub: signing_pb2_grpc.SigningServiceStub,
) -> None:
    keys = [bytes([i]) * 32 for i in range(5)]
    contexts = [f"letters/{i}".encode() for i in range(5)]
    wrapped = stub.WrapKeys(
        signing_pb2.WrapKeysRequest(
            keys=[
                signing_pb2.WrapKeyRequest(key=k, context=c)
                for k, c in zip(keys, contexts, strict=True)
            ]
        ),
        timeout=10,
    ).wrapped_keys
    assert len(wrapped) == 5 and len(set(wrapped)) == 5
    for i, blob in enumerate(wrapped):
        assert keys[i] not in blob
        unwrapped = stub.UnwrapKey(
            signing_pb2.UnwrapKeyRequest(wrapped_key=blob, context=contexts[i]), timeout=10
        )
        assert unwrapped.key == keys[i]
        with pytest.raises(grpc.RpcError) as raised:
            stub.UnwrapKey(
                signing_pb2.UnwrapKeyRequest(wrapped_key=blob, context=contexts[(i + 1) % 5]),
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ([], "keys"),
        ([(bytes(32), b"x")] * 257, "keys"),
        ([(bytes(32), b"x"), (b"short", b"y")], "keys[1].key"),
        ([(bytes(32), b"x"), (bytes(32), b"")], "keys[1].context"),
    ],
)
def test_a_bad_batch_of_keys_is_invalid_argument_naming_the_field(
    stub: signing_pb2_grpc.SigningServiceStub, keys: list[tuple[bytes, bytes]], field: str
) -> None:
    request = signing_pb2.WrapKeysRequest(
        keys=[signing_pb2.WrapKeyRequest(key=k, context=c) for k, c in keys]
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.WrapKeys(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")


def test_private_and_wrapping_keys_are_not_extractable(signer_settings: SignerSettings) -> None:
    token = Token(signer_settings.pkcs11_module, signer_settings.token_label, signer_settings.pin)
    token.connect()
    try:
        for cls, label in (
            (ObjectClass.PRIVATE_KEY, signer_settings.seal_key_label),
            (ObjectClass.PRIVATE_KEY, signer_settings.tsa_key_label),
            (ObjectClass.SECRET_KEY, signer_settings.wrap_key_label),
        ):
            assert token.key_attributes(cls, label) == {"extractable": False, "sensitive": True}
    finally:
        token.close()


def test_logging_in_twice_is_success(signer_settings: SignerSettings) -> None:
    first = Token(signer_settings.pkcs11_module, signer_settings.token_label, signer_settings.pin)
    second = Token(signer_settings.pkcs11_module, signer_settings.token_label, signer_settings.pin)
    first.connect()
    try:
        second.connect()  # the module says UserAlreadyLoggedIn; that is what we wanted
        assert len(second.sign_digest(signer_settings.seal_key_label, b"\x00" * 32)) > 64
        second.close()
    finally:
        first.close()
