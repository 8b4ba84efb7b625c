"""Proofing by qualified certificate through the real server process, as a
provider's PKI team configures it: the identity anchors, a member state's
trusted list (TS 119 612, signed) and its signer's certificate, and
`proofing_require_qualified`. A list whose signature does not verify stops
the server at start, with the setting named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TypedDict

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.clients import create_party
from tests.support.processes import BIN, free_port
from tests.support.proofing import LocalCA, person_subject
from tests.support.rpc import error_info
from tests.support.server import server_process
from tests.support.signer import SignerProcess
from tests.support.trusted_list import Service, broken, qc_statements, trusted_list, write_pem

QUALIFIED_CA = LocalCA("Qualified CA (e2e)")
PLAIN_CA = LocalCA("Non-qualified CA (e2e)")
TL_SIGNER = LocalCA("Trusted list signer (e2e)")


class Qualified(TypedDict):
    identity_trust_anchors_file: str
    trusted_list_files: str
    trusted_list_signers_file: str
    proofing_require_qualified: str
    run_workers: str


def _settings(tmp_path: Path, listed: bytes) -> Qualified:
    (tmp_path / "FR.xml").write_bytes(listed)
    return {
        "identity_trust_anchors_file": str(
            write_pem(tmp_path / "anchors.pem", QUALIFIED_CA.cert, PLAIN_CA.cert)
        ),
        "trusted_list_files": str(tmp_path / "FR.xml"),
        "trusted_list_signers_file": str(write_pem(tmp_path / "tlso.pem", TL_SIGNER.cert)),
        "proofing_require_qualified": "true",
        "run_workers": "false",
    }


def _prove(stub: identity_pb2_grpc.IdentityServiceStub, party: str, ca: LocalCA, compliance: bool):
    key, cert = ca.issue(
        person_subject("Camille", "Dupont"), extensions=(qc_statements(compliance),)
    )
    challenge = stub.BeginCertificateProofing(
        identity_pb2.BeginCertificateProofingRequest(party=party), timeout=10
    )
    return stub.CompleteCertificateProofing(
        identity_pb2.CompleteCertificateProofingRequest(
            party=party,
            challenge_id=challenge.challenge_id,
            certificate_chain=[cert.public_bytes(serialization.Encoding.DER)],
            signature=key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256())),
        ),
        timeout=30,
    )


# The database is not what is tested here (the integration tests run both).
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_qualified_certificate_proofs_at_high_and_another_is_refused(
    signer_process: SignerProcess, tmp_path: Path, database_url: str
) -> None:
    listed = trusted_list([Service("Qualifié (test)", QUALIFIED_CA.cert)], TL_SIGNER, "FR")
    settings = _settings(tmp_path, listed)
    with (
        server_process(signer_process, tmp_path, database_url, **settings) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        record = _prove(stub, create_party(stub, "q-1").name, QUALIFIED_CA, True)
        assert record.level == identity_pb2.ASSURANCE_LEVEL_HIGH
        assert "(FR trusted list #7: Qualifié (test))" in record.evidence_summary

        for request_id, ca, compliance in (("q-2", QUALIFIED_CA, False), ("q-3", PLAIN_CA, True)):
            party = create_party(stub, request_id).name
            with pytest.raises(grpc.RpcError) as refused:
                _prove(stub, party, ca, compliance)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert str(refused.value.details()).startswith("the certificate is not qualified: ")
            assert error_info(refused.value)[0] == "CERTIFICATE_NOT_QUALIFIED"
            level = stub.GetParty(identity_pb2.GetPartyRequest(name=party), timeout=10)
            assert level.assurance_level != identity_pb2.ASSURANCE_LEVEL_HIGH
        logged = server.log.read_text()
        assert '"trusted list loaded"' in logged and "Camille" not in logged


def test_a_list_whose_signature_does_not_verify_stops_the_start(tmp_path: Path) -> None:
    listed = trusted_list([Service("Qualifié (test)", QUALIFIED_CA.cert)], TL_SIGNER, "FR")
    settings = _settings(tmp_path, broken(listed))
    key = tmp_path / "server.key"
    key.write_text("00" * 32)
    env: dict[str, str] = {
        **os.environ,
        **{f"LRE_SERVER_{k.upper()}": str(v) for k, v in settings.items()},
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    started = subprocess.run(
        [str(BIN / "lre-server"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 2, started.stderr
    assert (
        "lre-server: configuration error: LRE_SERVER_TRUSTED_LIST_FILES: trusted list FR.xml: "
        "its signature does not verify under the configured trusted list signer certificates"
    ) in started.stderr
