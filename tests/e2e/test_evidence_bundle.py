"""GetEvidenceBundle over mutual TLS against the real server and signer: the
sender, the recipient (its own evidence, once it accepted) and an auditor
fetch bundles that the installed `lre-verify` accepts, and rejects with one
byte changed; the bundle's PDF is the stored proof (the e-mailed one, and
GetEvidenceProof's); strangers get what the conventions say. SQLite and
PostgreSQL."""

from __future__ import annotations

import email
import io
import mailbox
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lre.client.parties import register_party
from lre.dev.tls import TlsFiles
from lre.runtime import bundle_layout as layout
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import bearer, confirm_professional, deposit_letter, wait_notified
from tests.support.processes import BIN, wait_for
from tests.support.rpc import channel
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

SUBMISSION = common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE
ACCEPTANCE = common_pb2.EVIDENCE_EVENT_CONSIGNMENT_ACCEPTANCE


@pytest.fixture
def server(
    database_url: str, signer_process: SignerProcess, tmp_path: Path, tls: TlsFiles
) -> Iterator[ServerProcess]:
    # Heads only when the operator seals one: the test sees the bundle wait for it.
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        tls=tls,
        outbox_interval_s="0.2",
        sequencer_interval_s="0.2",
        tree_head_interval_s="3600",
    ) as s:
        yield s


def _bundle(
    custody: custody_pb2_grpc.CustodyServiceStub, name: str, metadata: tuple[tuple[str, str], ...]
) -> bytes:
    chunks = list(
        custody.GetEvidenceBundle(
            custody_pb2.GetEvidenceBundleRequest(name=name), metadata=metadata, timeout=60
        )
    )
    assert all(0 < len(c.data) <= 64 * 1024 for c in chunks)
    return b"".join(c.data for c in chunks)


def _code(call: object) -> grpc.StatusCode:
    try:
        list(call)  # type: ignore[call-overload]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _lre_verify(bundle: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "lre-verify"),
            str(bundle),
            "--trust",
            str(root),
            "--provider",
            str(root.parent / "provider-certificates.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _emailed_pdf(maildir: Path, filename: str) -> bytes:
    for message in mailbox.Maildir(maildir, create=False):
        for part in email.message_from_bytes(message.as_bytes()).walk():
            if part.get_filename() == filename:
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload
    raise AssertionError(f"no e-mail attaches {filename}")


def test_bundles_for_sender_recipient_and_auditor_verify_offline(
    server: ServerProcess, tls: TlsFiles, signer_process: SignerProcess, tmp_path: Path
) -> None:
    with (
        channel(server.address, tls, "sender-gateway") as gateway,
        channel(server.address, tls, "recipient-portal") as portal,
        channel(server.address, tls, "operator") as operator,
        channel(server.address, tls, "auditor") as auditor,
        channel(server.address, tls, "server") as no_role,
    ):
        staff = identity_pb2_grpc.IdentityServiceStub(operator)
        _, sender_token = register_party(
            identity_pb2_grpc.IdentityServiceStub(gateway),
            "b-s",
            staff,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
        )
        recipient, recipient_token = register_party(
            identity_pb2_grpc.IdentityServiceStub(portal),
            "b-r",
            staff,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Dest SA",
            email="courrier@dest.example",
        )
        _, stranger_token = register_party(
            identity_pb2_grpc.IdentityServiceStub(portal),
            "b-x",
            staff,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Tiers SA",
            email="tiers@example.org",
        )
        confirm_professional(staff, recipient)
        as_sender, as_recipient = bearer(sender_token), bearer(recipient_token)
        sending = custody_pb2_grpc.CustodyServiceStub(gateway)
        receiving = custody_pb2_grpc.CustodyServiceStub(portal)
        letter = deposit_letter(sending, sender_token, recipient, "bundle-1")
        wait_notified(sending, [letter], as_sender)
        receiving.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=letter.name), metadata=as_recipient
        )
        evidence = {
            e.event: e
            for e in sending.ListEvidence(
                custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
            ).evidence
        }
        deposit, acceptance = evidence[SUBMISSION].name, evidence[ACCEPTANCE].name

        # No sealed head contains the evidence yet: a clear FAILED_PRECONDITION.
        with pytest.raises(grpc.RpcError) as waiting:
            _bundle(sending, deposit, as_sender)
        assert waiting.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "tree head" in str(waiting.value.details()) or "log" in str(waiting.value.details())

        operating = custody_pb2_grpc.CustodyServiceStub(operator)

        def sealed() -> bool:
            operating.SealTreeHead(custody_pb2.SealTreeHeadRequest())
            code = _code(
                sending.GetEvidenceBundle(
                    custody_pb2.GetEvidenceBundleRequest(name=acceptance),
                    metadata=as_sender,
                    timeout=60,
                )
            )
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION), code
            return code == grpc.StatusCode.OK

        assert wait_for(sealed, timeout=60)  # the sequencer numbers entries every 0.2 s

        auditing = custody_pb2_grpc.CustodyServiceStub(auditor)
        bundles = {
            "sender": _bundle(sending, deposit, as_sender),
            "recipient": _bundle(receiving, acceptance, as_recipient),
            "auditor": _bundle(auditing, deposit, ()),
            "operator": _bundle(operating, acceptance, ()),
        }
        # The bundle's PDF is the stored proof: the one e-mailed and GetEvidenceProof's.
        with zipfile.ZipFile(io.BytesIO(bundles["sender"])) as archive:
            pdf = archive.read(layout.PROOF_PDF)
        assert (
            sending.GetEvidenceProof(
                custody_pb2.GetEvidenceProofRequest(name=deposit), metadata=as_sender
            ).pdf
            == pdf
        )
        assert wait_for(
            lambda: _has_attachment(server.maildir, f"SubmissionAcceptance-{letter.reference}.pdf"),
            timeout=60,
        ), _attachments(server.maildir) + server.log.read_text()[-3000:]
        assert _emailed_pdf(server.maildir, f"SubmissionAcceptance-{letter.reference}.pdf") == pdf
        assert bundles["auditor"] == bundles["sender"]  # the same evidence, the same bytes

        for who, data in bundles.items():
            path = tmp_path / f"{who}.zip"
            path.write_bytes(data)
            result = _lre_verify(path, signer_process.root_ca)
            assert result.returncode == 0, (who, result.stdout, result.stderr)
            assert result.stdout.splitlines()[-1] == "VALID"
            changed = bytearray(data)
            changed[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(changed))
            result = _lre_verify(path, signer_process.root_ca)
            assert result.returncode == 1, (who, result.stdout, result.stderr)
            assert "FAIL" in result.stdout

        # Who may not: another party's session (as if the evidence did not
        # exist), the recipient on the sender's own proof of deposit, a portal
        # without a session, a session through another portal than the one
        # that opened it, a certificate with no role.
        for stub, name, metadata, code in (
            (receiving, deposit, bearer(stranger_token), grpc.StatusCode.NOT_FOUND),
            (receiving, acceptance, bearer(stranger_token), grpc.StatusCode.NOT_FOUND),
            (sending, acceptance, bearer(stranger_token), grpc.StatusCode.UNAUTHENTICATED),
            (receiving, deposit, as_sender, grpc.StatusCode.UNAUTHENTICATED),
            (receiving, deposit, as_recipient, grpc.StatusCode.NOT_FOUND),
            (sending, deposit, (), grpc.StatusCode.UNAUTHENTICATED),
            (receiving, acceptance, (), grpc.StatusCode.UNAUTHENTICATED),
            (
                custody_pb2_grpc.CustodyServiceStub(no_role),
                deposit,
                as_sender,
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (
                auditing,
                f"{letter.name}/evidence/{_other_id(deposit)}",
                (),
                grpc.StatusCode.NOT_FOUND,
            ),
            (auditing, "letters/x", (), grpc.StatusCode.INVALID_ARGUMENT),
        ):
            call = stub.GetEvidenceBundle(
                custody_pb2.GetEvidenceBundleRequest(name=name), metadata=metadata, timeout=30
            )
            assert _code(call) == code, (name, metadata, code)


def _has_attachment(maildir: Path, filename: str) -> bool:
    try:
        _emailed_pdf(maildir, filename)
    except AssertionError:
        return False
    return True


def _attachments(maildir: Path) -> str:
    return " ".join(
        str(part.get_filename())
        for message in mailbox.Maildir(maildir, create=False)
        for part in email.message_from_bytes(message.as_bytes()).walk()
    )


def _other_id(name: str) -> str:
    """A well-formed evidence id that is not this one."""
    last = name.rsplit("/", 1)[-1]
    return last[:-1] + ("0" if last[-1] != "0" else "1")
