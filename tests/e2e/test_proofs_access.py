"""Reading one's own proofs does not depend on a live identity proofing
(R53-2, R53-3: the sender consults them for a year at least): against the
real server and signer, with the server's wall clock moved a year and more
on (libfaketime), a sender and a recipient whose proofing has expired log in
with the factors the provider issued them, read their letter's evidence,
PDF proofs and bundle, and the sender downloads its copy of the content
(journaled); sending needs a new proofing. `verify-log` passes on the whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import zipfile
from io import BytesIO
from pathlib import Path

import grpc
import pytest

from lre.client.parties import enroll_party, log_in
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import (
    ANNEX,
    CONTENT,
    bearer,
    confirm_professional,
    deposit_letter,
    wait_notified,
)
from tests.support.processes import BIN, wait_for
from tests.support.server import libfaketime, server_process
from tests.support.signer import SignerProcess

JUMP_DAYS = 400  # past the year every proofing here rests on


def _session(identity: identity_pb2_grpc.IdentityServiceStub, enrolled, at: dt.datetime):  # type: ignore[no-untyped-def]
    return identity.CreateSession(
        identity_pb2.CreateSessionRequest(
            party=enrolled.name, password=enrolled.password, totp_code=enrolled.totp.at(at)
        ),
        timeout=10,
    )


def test_a_sender_whose_proofing_expired_reads_its_year_old_proofs_and_downloads_its_content(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    faked = {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_CACHE_DURATION": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
    database = tmp_path / "lre.db"
    with (
        server_process(
            signer_process,
            tmp_path,
            f"sqlite:///{database}",
            environment=faked,
            outbox_interval_s="0.2",
            # The content is kept longer than the year the clock moves.
            content_retention_days="800",
            # Only the server's clock moves: the signer's TSA keeps real time.
            evidence_clock_skew_s=str((JUMP_DAYS + 2) * 86400),
        ) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        codes = server.enrolment_codes
        # Both proofed by an identity document valid 365 days (lre.client.parties).
        sender = enroll_party(
            identity,
            "s",
            codes=codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
        )
        recipient = enroll_party(
            identity,
            "r",
            codes=codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Dest SA",
            email="courrier@dest.example",
        )
        confirm_professional(identity, recipient.name)
        sender_token = log_in(identity, sender)
        letter = deposit_letter(custody, sender_token, recipient.name, "p-1")
        wait_notified(custody, [letter], bearer(sender_token))
        custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=letter.name),
            metadata=bearer(log_in(identity, recipient)),
        )

        clock.write_text(f"+{JUMP_DAYS}d\n")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=JUMP_DAYS)
        # Until the server's threads read the moved clock (FAKETIME_CACHE_DURATION):
        # then the sender's proofing has expired.
        assert wait_for(
            lambda: (
                identity.GetParty(identity_pb2.GetPartyRequest(name=sender.name)).assurance_level
                == identity_pb2.ASSURANCE_LEVEL_UNSPECIFIED
            ),
            timeout=20,
        )

        opened = _session(identity, sender, later)
        assert not opened.proofing_current
        as_sender = bearer(opened.token)
        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
        ).evidence
        events = [e.event for e in evidence]
        assert common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE in events
        assert common_pb2.EVIDENCE_EVENT_CONSIGNMENT_ACCEPTANCE in events
        for item in evidence:
            pdf = custody.GetEvidenceProof(
                custody_pb2.GetEvidenceProofRequest(name=item.name), metadata=as_sender
            ).pdf
            assert pdf.startswith(b"%PDF")
        custody.SealTreeHead(custody_pb2.SealTreeHeadRequest())
        bundle = b"".join(
            c.data
            for c in custody.GetEvidenceBundle(
                custody_pb2.GetEvidenceBundleRequest(name=evidence[0].name),
                metadata=as_sender,
                timeout=60,
            )
        )
        assert zipfile.ZipFile(BytesIO(bundle)).testzip() is None
        parts: dict[int, bytes] = {}
        for chunk in custody.DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=letter.name), metadata=as_sender
        ):
            parts[chunk.part_index] = parts.get(chunk.part_index, b"") + chunk.data
        assert parts == {0: CONTENT, 1: ANNEX}

        # Sending needs a new proofing.
        with pytest.raises(grpc.RpcError) as refused:
            deposit_letter(custody, opened.token, recipient.name, "p-2")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "proofing has expired" in (refused.value.details() or "")

        # The recipient who accepted reads its own evidence the same way.
        theirs = _session(identity, recipient, later)
        assert not theirs.proofing_current
        read = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=bearer(theirs.token)
        ).evidence
        assert common_pb2.EVIDENCE_EVENT_CONSIGNMENT_ACCEPTANCE in [e.event for e in read]

    with sqlite3.connect(database) as db:
        kinds = [
            json.loads(leaf).get("kind") for (leaf,) in db.execute("SELECT leaf FROM log_entries")
        ]
    assert kinds.count("content_downloaded") == 1
    checked = subprocess.run(
        [str(BIN / "lre-server"), "verify-log"],
        env={
            **os.environ,
            "LRE_SERVER_DATABASE_URL": f"sqlite:///{database}",
            "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(signer_process.root_ca),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PROBLEM" not in checked.stdout
