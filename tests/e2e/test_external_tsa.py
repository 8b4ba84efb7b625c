"""The provider's signer configured with an external RFC 3161 TSA (a second,
independently configured `lre-signer` on its own token and CA), the built-in
one as fallback: a letter's evidence seals and its PDF proof, assembled by
the server, carry the external TSA's timestamps, and the bundle verifies
offline with `lre-verify` under both roots and the declared certificates."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

from asn1crypto import cms
from cryptography import x509

from lre.client.parties import register_party
from lre.dev.tls import create_dev_tls
from lre.runtime import bundle_layout as layout
from lre.signer.devsetup import DevPaths
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import bearer, confirm_professional, deposit_letter, wait_notified
from tests.support.external_tsa import make_external_tsa, serving
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, channel, health_status
from tests.support.server import server_process
from tests.support.signer import SignerProcess, signer_env

SUBMISSION = common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE


def _stamped_by(seal: bytes) -> str:
    (signer_info,) = cms.ContentInfo.load(seal)["content"]["signer_infos"]
    (attribute,) = [
        a for a in signer_info["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"
    ]
    token = attribute["values"][0]["content"]
    serial = token["signer_infos"][0]["sid"].chosen["serial_number"].native
    (tsa,) = [c.chosen for c in token["certificates"] if c.chosen.serial_number == serial]
    return str(tsa.subject.native["common_name"])


def test_a_letters_seals_and_proof_carry_the_external_tsas_timestamps(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    qtsp = make_external_tsa(tmp_path / "qtsp")
    tls = create_dev_tls(tmp_path / "tls")
    crls = tmp_path / "crls.pem"
    crls.write_bytes((dev_var.pki / "crls.pem").read_bytes() + qtsp.crl.read_bytes())
    with serving(qtsp, tmp_path / "qtsp.log") as url:
        tsas = tmp_path / "tsas.toml"
        tsas.write_text(
            f'[tsa.qtsp]\nurl = "{url}"\ncertificate_file = "{qtsp.chain}"\n', encoding="utf-8"
        )
        grpc_port, http_port = free_port(), free_port()
        env = signer_env(
            dev_var,
            grpc_port,
            http_port,
            LRE_SIGNER_TIMESTAMP_SOURCES="qtsp,builtin",
            LRE_SIGNER_EXTERNAL_TSA_FILE=str(tsas),
            LRE_SIGNER_CRL_FILE=str(crls),
        )
        log = tmp_path / "signer.log"
        with running([str(BIN / "lre-signer"), "serve"], env, log):
            address = f"127.0.0.1:{grpc_port}"
            assert wait_for(lambda: health_status(address) == SERVING, timeout=60)
            signer = SignerProcess(address, f"http://127.0.0.1:{http_port}", dev_var, log)
            with (
                server_process(
                    signer,
                    tmp_path,
                    f"sqlite:///{tmp_path / 'lre.db'}",
                    tls=tls,
                    outbox_interval_s="0.2",
                    sequencer_interval_s="0.2",
                    tree_head_interval_s="3600",
                ) as server,
                channel(server.address, tls, "sender-gateway") as gateway,
                channel(server.address, tls, "operator") as operator,
            ):
                staff = identity_pb2_grpc.IdentityServiceStub(operator)
                identity = identity_pb2_grpc.IdentityServiceStub(gateway)
                company = identity_pb2.PARTY_KIND_LEGAL_PERSON
                _, sender_token = register_party(
                    identity, "t-s", staff, codes=server.enrolment_codes, kind=company,
                    professional=True, company_name="Bailleur SARL",
                    email="gestion@bailleur.example",
                )  # fmt: skip
                recipient, _ = register_party(
                    identity, "t-r", staff, codes=server.enrolment_codes, kind=company,
                    professional=True, company_name="Dest SA", email="courrier@dest.example",
                )  # fmt: skip
                confirm_professional(staff, recipient)
                sending = custody_pb2_grpc.CustodyServiceStub(gateway)
                letter = deposit_letter(sending, sender_token, recipient, "tsa-1")
                wait_notified(sending, [letter], bearer(sender_token))
                (deposit,) = [
                    e.name
                    for e in sending.ListEvidence(
                        custody_pb2.ListEvidenceRequest(parent=letter.name),
                        metadata=bearer(sender_token),
                    ).evidence
                    if e.event == SUBMISSION
                ]
                operating = custody_pb2_grpc.CustodyServiceStub(operator)

                def bundle() -> bytes | None:
                    operating.SealTreeHead(custody_pb2.SealTreeHeadRequest())
                    try:
                        chunks = operating.GetEvidenceBundle(
                            custody_pb2.GetEvidenceBundleRequest(name=deposit), timeout=60
                        )
                        return b"".join(c.data for c in chunks)
                    except Exception:  # FAILED_PRECONDITION until a head contains it
                        return None

                assert wait_for(lambda: bundle() is not None, timeout=60)
                data = bundle()
    assert data is not None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    assert _stamped_by(members[layout.EVIDENCE_SEAL]) == "Test QTSP TSA"
    tsa_chain = x509.load_pem_x509_certificates(members[layout.TSA_CHAIN])
    assert tsa_chain[0].subject.rfc4514_string() == "CN=Test QTSP TSA,O=Test QTSP,C=BE"

    path, roots, provider = tmp_path / "b.zip", tmp_path / "roots.pem", tmp_path / "prov.pem"
    path.write_bytes(data)
    roots.write_bytes((dev_var.pki / "root-ca.pem").read_bytes() + qtsp.root_ca.read_bytes())
    provider.write_bytes(dev_var.provider_certificates.read_bytes() + qtsp.tsa_cert.read_bytes())
    result = subprocess.run(
        [str(BIN / "lre-verify"), str(path), "--trust", str(roots), "--provider", str(provider)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VALID"
    assert "proof PDF: PAdES signature: B-LT" in result.stdout
    stamped = [line for line in result.stdout.splitlines() if "stamped by the declared TSA" in line]
    # The evidence seal, the tree head seal and the PDF proof.
    assert len(stamped) == 3 and all("Test QTSP TSA" in line for line in stamped), stamped
