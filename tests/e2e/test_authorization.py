"""Mutual TLS and the one authorization policy, against the real server:
plaintext, certificate-less and foreign-CA clients are refused; every RPC
under every caller role gets what the policy says; the operator's powers work."""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import symbol_database

from lre.client.mailing import mailing_requests
from lre.dev.tls import TlsFiles, create_dev_tls
from lre.server.api.policy import POLICY
from lre.signer.devsetup import DevPaths
from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
)
from tests.support.clients import ROLES, bearer, deposit_letter, register_company
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, channel, error_info, health_status
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess, signer_env

SERVICES = [
    d.services_by_name[name]
    for d, name in (
        (custody_pb2.DESCRIPTOR, "CustodyService"),
        (identity_pb2.DESCRIPTOR, "IdentityService"),
        (notification_pb2.DESCRIPTOR, "NotificationService"),
    )
]


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path, tls: TlsFiles) -> Iterator[ServerProcess]:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    with server_process(signer_process, tmp_path, database, tls=tls, run_workers="false") as s:
        yield s


def _methods() -> list[tuple[str, object, bool, bool]]:
    """Every RPC of the server: (full name, request class, client-streaming, server-streaming)."""
    found: list[tuple[str, object, bool, bool]] = []
    for service in SERVICES:
        for method in service.methods:
            request = symbol_database.Default().GetSymbol(method.input_type.full_name)
            found.append(
                (
                    f"/{service.full_name}/{method.name}",
                    request,
                    method.client_streaming,
                    method.server_streaming,
                )
            )
    return found


def _call(
    ch: grpc.Channel,
    method: str,
    request: object,
    streams: tuple[bool, bool],
    payload: bytes | None = None,
) -> grpc.StatusCode:
    """``payload``: bytes to send instead of an empty ``request``."""
    identity = lambda b: b  # noqa: E731
    if payload is None:
        payload = request().SerializeToString()  # type: ignore[operator]
    try:
        if streams == (True, False):
            ch.stream_unary(method, identity, identity)(iter([payload]), timeout=10)
        elif streams == (False, True):
            list(ch.unary_stream(method, identity, identity)(payload, timeout=10))
        else:
            ch.unary_unary(method, identity, identity)(payload, timeout=10)
    except grpc.RpcError as exc:
        if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            # Every refusal says why in a machine-readable reason, not only in words.
            reason, _ = error_info(exc)
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                assert reason in ("METHOD_NOT_ALLOWED", "UNKNOWN_CALLER", "PERMISSION_DENIED")
        return exc.code()
    return grpc.StatusCode.OK


def test_the_policy_names_every_rpc_of_the_server() -> None:
    assert set(POLICY) == {m for m, *_ in _methods()}


def test_every_rpc_under_every_role_gets_what_the_policy_says(
    server: ServerProcess, tls: TlsFiles
) -> None:
    for caller, role in ROLES.items():
        with channel(server.address, tls, caller) as ch:
            for method, request, client_streaming, server_streaming in _methods():
                code = _call(ch, method, request, (client_streaming, server_streaming))
                if role not in POLICY[method]:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (caller, method, code)
                else:
                    # Allowed: the request itself is judged (empty, so mostly
                    # INVALID_ARGUMENT, or UNAUTHENTICATED without a session).
                    assert code not in (
                        grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.UNIMPLEMENTED,
                    ), (caller, method, code)
    # End users: a portal's call that needs a session gets UNAUTHENTICATED without one.
    with channel(server.address, tls, "recipient-portal") as ch:
        stub = custody_pb2_grpc.CustodyServiceStub(ch)
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.ListLetters(custody_pb2.ListLettersRequest(role=custody_pb2.LETTER_ROLE_RECIPIENT))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_undecodable_bytes_are_refused_as_the_role_demands_first(
    server: ServerProcess, tls: TlsFiles
) -> None:
    """The role is checked before the request is decoded: a caller without it
    learns PERMISSION_DENIED, one with it INVALID_ARGUMENT."""
    malformed = b"\x0a\xff\xff\xff"
    for caller, role in ROLES.items():
        with channel(server.address, tls, caller) as ch:
            for method, request, client_streaming, server_streaming in _methods():
                code = _call(ch, method, request, (client_streaming, server_streaming), malformed)
                if role not in POLICY[method]:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (caller, method, code)
                elif method.endswith(("/DepositLetter", "/DepositMailing")):
                    # The session comes first there, before any message is read.
                    assert code == grpc.StatusCode.UNAUTHENTICATED, (caller, method, code)
                else:
                    assert code == grpc.StatusCode.INVALID_ARGUMENT, (caller, method, code)


def test_plaintext_certificate_less_and_foreign_clients_are_refused(
    server: ServerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    assert health_status(server.address, tls=tls, caller="auditor") == SERVING
    assert health_status(server.address) is None  # plaintext
    assert health_status(server.address, tls=tls) is None  # TLS without a client certificate
    foreign = create_dev_tls(tmp_path / "foreign")
    # A client certificate from another CA, trusting the right server CA.
    mixed = TlsFiles(tmp_path / "mixed")
    mixed.root.mkdir()
    mixed.ca.write_bytes(tls.ca.read_bytes())
    for suffix in ("pem", "key"):
        (mixed.root / f"operator.{suffix}").write_bytes(
            (foreign.root / f"operator.{suffix}").read_bytes()
        )
    assert health_status(server.address, tls=mixed, caller="operator") is None


def test_only_the_recipients_portal_claims_a_letter_and_only_with_its_notice(
    server: ServerProcess, tls: TlsFiles
) -> None:
    """ClaimLetter leads from a notice to the addressee's party: the sender's
    gateway (which knows the reference from its proof of deposit), operators
    and auditors may not call it at all; the portal needs the code too."""
    method = "/lre.v1.NotificationService/ClaimLetter"
    wrong = notification_pb2.ClaimLetterRequest(
        letter_reference="ABCDEFGHJKLM", verification_code="AAAAA-AAAAA"
    )
    expected = {
        "sender-gateway": grpc.StatusCode.PERMISSION_DENIED,
        "operator": grpc.StatusCode.PERMISSION_DENIED,
        "auditor": grpc.StatusCode.PERMISSION_DENIED,
        "recipient-portal": grpc.StatusCode.NOT_FOUND,
    }
    assert set(expected) == set(ROLES)
    for caller, code in expected.items():
        with channel(server.address, tls, caller) as ch:
            called = _call(ch, method, None, (False, False), payload=wrong.SerializeToString())
            assert called == code, (caller, called)


def test_an_operator_puts_a_letter_on_legal_hold(server: ServerProcess, tls: TlsFiles) -> None:
    with (
        channel(server.address, tls, "sender-gateway") as gateway,
        channel(server.address, tls, "operator") as operator,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(gateway)
        custody = custody_pb2_grpc.CustodyServiceStub(gateway)
        # Identity documents are checked by the provider's operators.
        checks = identity_pb2_grpc.IdentityServiceStub(operator)
        _, sender = register_company(
            identity,
            server.enrolment_codes,
            "hs",
            "Expediteur SAS",
            "envoi@expediteur.example",
            checks,
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "hr", "Dest SA", "courrier@dest.example", checks
        )
        letter = deposit_letter(custody, sender, recipient, "held")
        assert not letter.legal_hold
        held = custody_pb2_grpc.CustodyServiceStub(operator).SetLegalHold(
            custody_pb2.SetLegalHoldRequest(name=letter.name, legal_hold=True)
        )
        assert held.legal_hold and held.name == letter.name
        seen = custody.GetLetter(
            custody_pb2.GetLetterRequest(name=letter.name),
            metadata=(("authorization", f"Bearer {sender}"),),
        )
        assert seen.legal_hold
        # The sender's gateway may not lift it.
        with pytest.raises(grpc.RpcError) as denied:
            custody.SetLegalHold(custody_pb2.SetLegalHoldRequest(name=letter.name))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_production_mode_refuses_to_start_in_plaintext(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LRE_SERVER_REQUIRE_TLS": "true",
        "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
        "LRE_SERVER_SECRETS_KEY_FILE": str(tmp_path / "server.key"),
    }
    (tmp_path / "server.key").write_text("00" * 32)
    env.pop("LRE_CONFIG", None)
    started = subprocess.run(
        [str(BIN / "lre-server"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 2
    assert started.stderr.startswith("lre-server: configuration error: LRE_SERVER_REQUIRE_TLS")
    assert "Traceback" not in started.stderr


def test_each_caller_has_its_own_rate_and_messages_have_a_size_limit(
    signer_process: SignerProcess, tmp_path: Path, tls: TlsFiles
) -> None:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    with (
        server_process(
            signer_process,
            tmp_path,
            database,
            tls=tls,
            run_workers="false",
            rate_limit_per_s="0.5",
            rate_limit_burst="5",
        ) as server,
        channel(server.address, tls, "operator") as operator,
        channel(server.address, tls, "auditor") as auditor,
    ):
        head = custody_pb2.GetTreeHeadRequest()
        codes = []
        for _ in range(10):
            with pytest.raises(grpc.RpcError) as answer:
                custody_pb2_grpc.CustodyServiceStub(operator).GetTreeHead(head)
            codes.append(answer.value.code())
        # The burst: the request itself is judged (no head yet); then slowed down.
        assert codes[:5] == [grpc.StatusCode.NOT_FOUND] * 5
        assert set(codes[6:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        with pytest.raises(grpc.RpcError) as other:
            custody_pb2_grpc.CustodyServiceStub(auditor).GetTreeHead(head)
        assert other.value.code() == grpc.StatusCode.NOT_FOUND  # another caller, its own rate
        # Over the size limit from a caller with the role (one without it is
        # refused before its message is read).
        with pytest.raises(grpc.RpcError) as huge:
            identity_pb2_grpc.IdentityServiceStub(auditor).ListIdentityRecords(
                identity_pb2.ListIdentityRecordsRequest(party="x" * (3 * 1024 * 1024))
            )
        assert huge.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_production_mode_runs_mutual_tls_end_to_end(
    dev_var: DevPaths, tmp_path: Path, tls: TlsFiles
) -> None:
    """Signer and server both refuse plaintext; the server reaches the signer
    with its client certificate; /tsa and /metrics answer over HTTPS only."""
    grpc_port, http_port = free_port(), free_port()
    signer_tls = {
        "LRE_SIGNER_TLS_CERT_FILE": str(tls.service_cert),
        "LRE_SIGNER_TLS_KEY_FILE": str(tls.service_key),
        "LRE_SIGNER_TLS_CLIENT_CA_FILE": str(tls.ca),
        "LRE_SIGNER_REQUIRE_TLS": "true",
    }
    env = signer_env(dev_var, grpc_port, http_port, **signer_tls)
    with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log"):
        signer_address = f"127.0.0.1:{grpc_port}"
        assert wait_for(
            lambda: health_status(signer_address, tls=tls, caller="operator") == SERVING
        ), (tmp_path / "signer.log").read_text()
        assert health_status(signer_address) is None  # plaintext refused
        signer = SignerProcess(signer_address, f"https://127.0.0.1:{http_port}", dev_var, tmp_path)
        with (
            server_process(
                signer,
                tmp_path,
                f"sqlite:///{tmp_path / 'lre.db'}",
                tls=tls,
                require_tls="true",
                run_workers="false",
                signer_tls_ca_file=str(tls.ca),
                signer_tls_cert_file=str(tls.client_cert("server")),
                signer_tls_key_file=str(tls.client_key("server")),
            ) as server,
            channel(server.address, tls, "sender-gateway") as gateway,
            channel(server.address, tls, "operator") as operator,
        ):
            identity = identity_pb2_grpc.IdentityServiceStub(gateway)
            checks = identity_pb2_grpc.IdentityServiceStub(operator)
            _, sender = register_company(
                identity,
                server.enrolment_codes,
                "ps",
                "Expediteur SAS",
                "e@expediteur.example",
                checks,
            )
            recipient, _ = register_company(
                identity, server.enrolment_codes, "pr", "Dest SA", "c@dest.example", checks
            )
            # Sealed and its key wrapped by the signer, over mutual TLS.
            letter = deposit_letter(
                custody_pb2_grpc.CustodyServiceStub(gateway), sender, recipient, "p"
            )
            assert letter.state == common_pb2.LETTER_STATE_DEPOSITED
            trusted = ssl.create_default_context(cafile=str(tls.ca))
            for url in (
                server.metrics_url.replace("http://", "https://"),
                f"{signer.http_url}/metrics",
            ):
                with urllib.request.urlopen(url, context=trusted, timeout=10) as reply:
                    assert b"grpc_server_handled_total" in reply.read()
                with pytest.raises((urllib.error.URLError, ConnectionError)):
                    urllib.request.urlopen(url.replace("https://", "http://"), timeout=5)


def test_operators_and_auditors_read_any_letter_s_evidence_and_each_read_is_journaled(
    server: ServerProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    """Read-only and journaled for staff; the portals' rules unchanged (a
    portal without the party's session reads nothing)."""
    with (
        channel(server.address, tls, "sender-gateway") as gateway,
        channel(server.address, tls, "operator") as operator,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(gateway)
        checks = identity_pb2_grpc.IdentityServiceStub(operator)
        _, sender = register_company(
            identity, server.enrolment_codes, "as", "Audit SAS", "a@audit.example", checks
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "ar", "Audite SA", "b@audite.example", checks
        )
        letter = deposit_letter(
            custody_pb2_grpc.CustodyServiceStub(gateway), sender, recipient, "a"
        )
        # A mailing's refusal is evidence too: staff read it by name, journaled.
        mailing = custody_pb2_grpc.CustodyServiceStub(gateway).DepositMailing(
            mailing_requests(
                "audit-refusal",
                "audit",
                [(f"parties/{uuid.uuid4()}", "nobody")],
                [("a.pdf", "application/pdf", b"%PDF-1.7 audit")],
            ),
            metadata=bearer(sender),
        )
        refusal = mailing.recipients[0].refusal.evidence.name
        for caller in ("sender-gateway", "recipient-portal"):
            with channel(server.address, tls, caller) as portal:
                with pytest.raises(grpc.RpcError) as anonymous:
                    custody_pb2_grpc.CustodyServiceStub(portal).ListEvidence(
                        custody_pb2.ListEvidenceRequest(parent=letter.name)
                    )
                assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for caller in ("auditor", "operator"):
        with channel(server.address, tls, caller) as staff:
            custody = custody_pb2_grpc.CustodyServiceStub(staff)
            (evidence,) = custody.ListEvidence(
                custody_pb2.ListEvidenceRequest(parent=letter.name)
            ).evidence
            assert evidence.event == common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE
            got = custody.GetEvidence(custody_pb2.GetEvidenceRequest(name=evidence.name))
            assert got.document == evidence.document
            proof = custody.GetEvidenceProof(
                custody_pb2.GetEvidenceProofRequest(name=evidence.name)
            )
            assert proof.pdf.startswith(b"%PDF")
            rejection = custody.GetEvidence(custody_pb2.GetEvidenceRequest(name=refusal))
            assert rejection.event == common_pb2.EVIDENCE_EVENT_SUBMISSION_REJECTION
            assert rejection.seal
            with pytest.raises(grpc.RpcError) as missing:
                custody.ListEvidence(
                    custody_pb2.ListEvidenceRequest(parent=f"letters/{uuid.uuid4()}")
                )
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as read_only:
                custody.AcceptLetter(custody_pb2.AcceptLetterRequest(name=letter.name))
            assert read_only.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with sqlite3.connect(tmp_path / "lre.db") as database:
        leaves = [json.loads(row[0]) for row in database.execute("SELECT leaf FROM log_entries")]
    # The serving process journaled its start (version, digest of its settings).
    (started,) = [e for e in leaves if e.get("kind") == "process_started"]
    assert started["command"] == "serve" and len(started["settingsSha256"]) == 64
    reads = [
        (e["actor"], e["role"], e["method"], e.get("evidence"))
        for e in leaves
        if e.get("kind") == "evidence_read" and e["subject"] == letter.name
    ]
    assert sorted(reads) == sorted(
        (
            f"{caller}.lre.internal",
            caller,
            method,
            evidence.name if method != "ListEvidence" else None,
        )
        for caller in ("auditor", "operator")
        for method in ("ListEvidence", "GetEvidence", "GetEvidenceProof")
    )
    refusal_reads = [
        (e["actor"], e["method"], e["evidence"])
        for e in leaves
        if e.get("kind") == "evidence_read" and e["subject"] == mailing.name
    ]
    assert sorted(refusal_reads) == [
        (f"{caller}.lre.internal", "GetEvidence", refusal) for caller in ("auditor", "operator")
    ]
