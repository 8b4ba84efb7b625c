"""Mailings through the real server and signer: one document to many
recipients, each a letter of its own; refusals sealed; the content stored once
and purged only when no letter of the mailing needs it."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from lre.client.mailing import mailing_requests
from lre.client.parties import EnrolmentCodes, enroll_party, log_in
from lre.server.storage import models
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import bearer, register_company, wait_notified
from tests.support.pki import verify_seal
from tests.support.processes import wait_for
from tests.support.rpc import field_violations
from tests.support.server import libfaketime, server_process
from tests.support.signer import SignerProcess

CONVOCATION = b"%PDF-1.7 convocation assemblee generale " * 4000  # ~160 KB, several chunks
PARTS = [("convocation.pdf", "application/pdf", CONVOCATION)]
REFUSED = common_pb2.EVIDENCE_EVENT_SUBMISSION_REJECTION
REFERENCE = "AG 2027 résidence Les Tilleuls"


def _consumer(
    identity: identity_pb2_grpc.IdentityServiceStub,
    codes: EnrolmentCodes,
    label: str,
    sender: str | None,
) -> Any:
    """A proofed consumer; consenting to ``sender``'s letters when given (with
    their own session: consent is the recipient's). With the session opened
    for it, if any (a TOTP code is good once: the caller reuses the session)."""
    party = enroll_party(
        identity,
        f"{label}-{uuid.uuid4().hex[:6]}",
        codes=codes,
        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
        given_name="Copropriétaire",
        family_name=label,
        email=f"{label}@coproprietaires.example",
    )
    if sender:
        identity.GrantConsent(
            identity_pb2.GrantConsentRequest(
                request_id=f"consent-{label}-{uuid.uuid4().hex[:6]}",
                recipient=party.name,
                sender=sender,
                method="signed form",
            ),
            metadata=bearer(token := log_in(identity, party)),
        )
        return party, token
    return party, None


def _mailing(
    custody: custody_pb2_grpc.CustodyServiceStub,
    token: str,
    request_id: str,
    recipients: list[tuple[str, str]],
    parts: list[tuple[str, str, bytes]] = PARTS,
) -> custody_pb2.Mailing:
    return custody.DepositMailing(
        mailing_requests(request_id, REFERENCE, recipients, parts),
        metadata=bearer(token),
        timeout=60,
    )


# A company name with characters the proofs' fonts have no glyph for.
SENDER_NAME = "Syndic Tilleuls SARL 管理"
PRINTED_SENDER_NAME = "Syndic Tilleuls SARL [U+7BA1][U+7406]"


def test_a_mailing_gives_each_recipient_a_letter_or_a_sealed_refusal(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> None:
    with (
        server_process(signer_process, tmp_path, database_url, run_workers="false") as process,
        grpc.insecure_channel(process.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender, token = register_company(
            identity,
            process.enrolment_codes,
            "ms",
            SENDER_NAME,
            "syndic@tilleuls.example",
        )
        _, other_token = register_company(
            identity, process.enrolment_codes, "mo", "Autre Syndic", "autre@syndic.example"
        )
        consenting, _ = _consumer(identity, process.enrolment_codes, "alice", sender)
        silent, _ = _consumer(identity, process.enrolment_codes, "bruno", None)  # no consent
        professional, _ = register_company(
            identity, process.enrolment_codes, "mp", "SCI Lot 7", "gestion@sci7.example"
        )
        unknown = f"parties/{uuid.uuid4()}"
        recipients = [
            (consenting.name, "lot 1"),
            (silent.name, "lot 2"),
            (professional, "lot 7"),
            (unknown, "lot 9"),
            ("alice@coproprietaires.example", "lot 11"),
        ]
        mailing = _mailing(custody, token, "ag-2027", recipients)

        assert (mailing.recipient_count, mailing.letter_count, mailing.refused_count) == (5, 2, 3)
        assert dict(mailing.refusals) == {
            "consent_missing": 1,
            "party_unknown": 1,
            "invalid_address": 1,
        }
        assert mailing.progress.awaiting_notification == 2
        by_reference = {r.letter_reference: r for r in mailing.recipients}
        assert [r.index for r in mailing.recipients] == [0, 1, 2, 3, 4]
        assert by_reference["lot 1"].WhichOneof("result") == "letter"
        assert by_reference["lot 7"].WhichOneof("result") == "letter"
        for lot, code in (
            ("lot 2", "consent_missing"),
            ("lot 9", "party_unknown"),
            ("lot 11", "invalid_address"),
        ):
            refusal = by_reference[lot].refusal
            assert refusal.reason_code == code
            assert refusal.evidence.event == REFUSED
            # Named in the answer, not carried: fetched sealed by that name.
            assert not refusal.evidence.document and not refusal.evidence.seal
            name = refusal.evidence.name
            evidence = custody.GetEvidence(
                custody_pb2.GetEvidenceRequest(name=name), metadata=bearer(token)
            )
            assert evidence.name == name and evidence.event == REFUSED
            document = verify_seal(evidence, signer_process, tmp_path)
            assert document["event"].endswith("SubmissionRejection")
            assert document["reasonCode"] == code
            assert document["sender"]["name"] == SENDER_NAME
            assert document["letterId"] == name.rsplit("/evidence/", 1)[0]
        # Its signed PDF proof, checked by poppler: valid, signed whole, saying why.
        lot_2 = by_reference["lot 2"].refusal.evidence.name
        proof = custody.GetEvidenceProof(
            custody_pb2.GetEvidenceProofRequest(name=lot_2), metadata=bearer(token)
        )
        pdf = tmp_path / "refusal.pdf"
        pdf.write_bytes(proof.pdf)
        checked = subprocess.run(["pdfsig", pdf], capture_output=True, text=True)
        assert "Signature is Valid." in checked.stdout, checked.stdout + checked.stderr
        assert "Total document signed" in checked.stdout, checked.stdout
        text = subprocess.run(["pdftotext", pdf, "-"], capture_output=True, text=True).stdout
        assert "consent_missing" in text, text
        # Characters the PDF's fonts cannot draw, by code point; exact in the evidence.
        assert PRINTED_SENDER_NAME in text, text
        # Another sender, a malformed name, and the bundle a refusal does not have.
        for fetch, expected in (
            (
                lambda: custody.GetEvidence(
                    custody_pb2.GetEvidenceRequest(name=lot_2), metadata=bearer(other_token)
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
            (
                lambda: custody.GetEvidence(
                    custody_pb2.GetEvidenceRequest(
                        name=lot_2.replace("/recipients/1/", "/recipients/2/")
                    ),
                    metadata=bearer(token),
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
            (
                lambda: custody.GetEvidenceProof(
                    custody_pb2.GetEvidenceProofRequest(name=lot_2.replace("/1/", "/x/")),
                    metadata=bearer(token),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                lambda: custody.GetEvidence(
                    custody_pb2.GetEvidenceRequest(name=lot_2.replace("/1/", "/01/")),
                    metadata=bearer(token),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                lambda: list(
                    custody.GetEvidenceBundle(
                        custody_pb2.GetEvidenceBundleRequest(name=lot_2), metadata=bearer(token)
                    )
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                fetch()
            assert refused.value.code() == expected, refused.value.details()
        # The bundle call says a refusal has none only of one the caller may read.
        for name, expected in (
            (lot_2.replace("/1/", "/x/"), grpc.StatusCode.INVALID_ARGUMENT),
            (lot_2.replace("/recipients/1/", "/recipients/2/"), grpc.StatusCode.NOT_FOUND),
            (f"{lot_2}/", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                list(
                    custody.GetEvidenceBundle(
                        custody_pb2.GetEvidenceBundleRequest(name=name), metadata=bearer(token)
                    )
                )
            assert refused.value.code() == expected, (name, refused.value.details())
        with pytest.raises(grpc.RpcError) as refused:
            list(
                custody.GetEvidenceBundle(
                    custody_pb2.GetEvidenceBundleRequest(name=lot_2), metadata=bearer(other_token)
                )
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        # Answered with its one name, however the ids were written.
        mailing_id = lot_2.split("/")[1]
        shouted = custody.GetEvidenceProof(
            custody_pb2.GetEvidenceProofRequest(name=lot_2.replace(mailing_id, mailing_id.upper())),
            metadata=bearer(token),
        )
        assert shouted.name == lot_2
        assert [p.digest.value for p in mailing.parts] == [hashlib.sha256(CONVOCATION).digest()]

        # Each letter: its own proof of deposit with the content's digest, its own charge.
        letters = [by_reference["lot 1"].letter, by_reference["lot 7"].letter]
        for name in letters:
            letter = custody.GetLetter(
                custody_pb2.GetLetterRequest(name=name), metadata=bearer(token)
            )
            assert letter.state == common_pb2.LETTER_STATE_DEPOSITED
            (evidence,) = custody.ListEvidence(
                custody_pb2.ListEvidenceRequest(parent=name), metadata=bearer(token)
            ).evidence
            document = verify_seal(evidence, signer_process, tmp_path)
            assert document["event"].endswith("SubmissionAcceptance")
            assert document["letterId"] == name
            assert [d["digestValue"] for d in document["contentDigests"]] == [
                base64.b64encode(hashlib.sha256(CONVOCATION).digest()).decode()
            ]
        charges = custody.ListCharges(custody_pb2.ListChargesRequest(), metadata=bearer(token))
        assert sorted(c.letter for c in charges.charges) == sorted(letters)

        # The content once, not once per letter.
        engine = create_engine(database_url)
        with engine.connect() as db:
            assert db.scalar(select(func.count()).select_from(models.ContentChunk)) == 0
            stored = db.scalar(select(func.sum(func.length(models.MailingChunk.ciphertext))))
            assert len(CONVOCATION) < stored < len(CONVOCATION) * 1.01
            plain = db.scalar(
                select(func.count())
                .select_from(models.MailingChunk)
                .where(models.MailingChunk.ciphertext.contains(b"convocation"))
            )
            assert plain == 0
        engine.dispose()

        # A retry gets the first mailing; the same key with other content is refused.
        again = _mailing(custody, token, "ag-2027", recipients)
        assert again == mailing
        with pytest.raises(grpc.RpcError) as conflict:
            _mailing(
                custody,
                token,
                "ag-2027",
                recipients,
                [("convocation.pdf", "application/pdf", CONVOCATION[:-1] + b"!")],
            )
        assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as conflict:
            _mailing(custody, token, "ag-2027", recipients[:2])
        assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # Another reference, or a delegate the first deposit's proofs do not name.
        requests = list(mailing_requests("ag-2027", "AG 2028", recipients, PARTS))
        delegated = list(mailing_requests("ag-2027", REFERENCE, recipients, PARTS))
        delegated[0].envelope.sender_delegate.CopyFrom(
            common_pb2.Delegate(given_name="Jean", family_name="Dupont")
        )
        for changed, field in ((requests, "reference"), (delegated, "sender_delegate")):
            with pytest.raises(grpc.RpcError) as conflict:
                custody.DepositMailing(iter(changed), metadata=bearer(token), timeout=60)
            assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert f"envelope.{field}" in field_violations(conflict.value)
        # The key is the caller's: another sender's same request_id is a mailing of its own.
        theirs = _mailing(custody, other_token, "ag-2027", [(professional, "x")])
        assert theirs.name != mailing.name

        # Reading: the mailing, the sender's list, its letters, its report; others see nothing.
        got = custody.GetMailing(
            custody_pb2.GetMailingRequest(name=mailing.name), metadata=bearer(token)
        )
        assert got == mailing
        listed = custody.ListMailings(custody_pb2.ListMailingsRequest(), metadata=bearer(token))
        assert [m.name for m in listed.mailings] == [mailing.name]
        assert not listed.mailings[0].recipients
        in_mailing = custody.ListLetters(
            custody_pb2.ListLettersRequest(
                role=custody_pb2.LETTER_ROLE_SENDER, mailing=mailing.name
            ),
            metadata=bearer(token),
        )
        assert sorted(letter.name for letter in in_mailing.letters) == sorted(letters)
        for call in (
            lambda: custody.GetMailing(
                custody_pb2.GetMailingRequest(name=mailing.name), metadata=bearer(other_token)
            ),
            lambda: custody.ListLetters(
                custody_pb2.ListLettersRequest(
                    role=custody_pb2.LETTER_ROLE_SENDER, mailing=mailing.name
                ),
                metadata=bearer(other_token),
            ),
        ):
            with pytest.raises(grpc.RpcError) as hidden:
                call()
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        report = b"".join(
            c.data
            for c in custody.GetMailingReport(
                custody_pb2.GetMailingReportRequest(name=mailing.name), metadata=bearer(token)
            )
        )
        rows = list(csv.DictReader(io.StringIO(report.decode())))
        assert [r["letter_reference"] for r in rows] == [
            "lot 1",
            "lot 2",
            "lot 7",
            "lot 9",
            "lot 11",
        ]
        assert rows[0]["state"] == "deposited"
        assert rows[0]["SubmissionAcceptance_evidence"].startswith(f"{letters[0]}/evidence/")
        assert rows[1]["state"] == "refused_at_deposit"
        assert rows[1]["refusal"] == "consent_missing"
        assert (
            rows[1]["SubmissionRejection_evidence"] == by_reference["lot 2"].refusal.evidence.name
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(
                custody.GetMailingReport(
                    custody_pb2.GetMailingReportRequest(name=mailing.name, format=99),  # type: ignore[arg-type]
                    metadata=bearer(token),
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "format" in field_violations(refused.value)
        # The sealed summary: a signed PDF whose attached JSON the seal covers.
        sealed = tmp_path / "summary.pdf"
        sealed.write_bytes(
            b"".join(
                c.data
                for c in custody.GetMailingReport(
                    custody_pb2.GetMailingReportRequest(
                        name=mailing.name, format=custody_pb2.MAILING_REPORT_FORMAT_SEALED_PDF
                    ),
                    metadata=bearer(token),
                )
            )
        )
        checked = subprocess.run(["pdfsig", sealed], capture_output=True, text=True)
        assert "Signature is Valid." in checked.stdout, checked.stdout + checked.stderr
        assert "Total document signed" in checked.stdout, checked.stdout
        # Its times as a letter's proofs print theirs: Paris time named, and UTC.
        printed = subprocess.run(["pdftotext", sealed, "-"], capture_output=True, text=True).stdout
        assert printed.count("heure de Paris") == 2 and printed.count(" UTC") >= 2, printed
        attached = tmp_path / "attached"
        attached.mkdir()
        subprocess.run(["pdfdetach", "-saveall", "-o", attached, sealed], check=True)
        mailing_id = mailing.name.removeprefix("mailings/")
        summary = verify_seal(
            custody_pb2.Evidence(
                name=mailing.name,
                document=(attached / f"mailing-{mailing_id}.json").read_bytes(),
                seal=(attached / f"mailing-{mailing_id}.p7m").read_bytes(),
            ),
            signer_process,
            tmp_path,
        )
        assert summary["mailing"] == mailing.name
        assert summary["sender"]["name"] == SENDER_NAME
        assert [c["sha256"] for c in summary["content"]] == [
            hashlib.sha256(CONVOCATION).hexdigest()
        ]
        assert [
            (r["letterReference"], r.get("letter"), r.get("refusal"), r.get("evidence"))
            for r in summary["recipients"]
        ] == [
            (
                r.letter_reference,
                r.letter or None,
                r.refusal.reason_code or None,
                r.refusal.evidence.name or None,
            )
            for r in mailing.recipients
        ]
        text = subprocess.run(["pdftotext", sealed, "-"], capture_output=True, text=True).stdout
        for lot in ("lot 1", "lot 2", "lot 11", "consent_missing", "party_unknown"):
            assert lot in text, (lot, text)
        assert PRINTED_SENDER_NAME in text and "Unicode code point" in " ".join(text.split())
        with pytest.raises(grpc.RpcError) as hidden:
            list(
                custody.GetMailingReport(
                    custody_pb2.GetMailingReportRequest(
                        name=mailing.name, format=custody_pb2.MAILING_REPORT_FORMAT_SEALED_PDF
                    ),
                    metadata=bearer(other_token),
                )
            )
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

        # Bad input is the caller's mistake, named.
        for bad, field in (
            ([], "envelope.recipients"),
            ([(professional, "x")] * 5001, "envelope.recipients"),
            # The same party twice would get two letters, two notices, two charges.
            (
                [(professional, "x"), (consenting.name, "y"), (professional, "z")],
                "envelope.recipients[2].recipient",
            ),
            # No recipient named at all: nobody to seal a refusal for.
            ([(professional, "x"), (" ", "y")], "envelope.recipients[1].recipient"),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                _mailing(custody, token, f"bad-{len(bad)}-{field}", bad)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in str(refused.value.details()), refused.value.details()
    assert b"convocation" not in process.log.read_bytes()


def _content(custody: custody_pb2_grpc.CustodyServiceStub, name: str, token: str) -> bytes:
    return b"".join(
        c.data
        for c in custody.DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=name), metadata=bearer(token)
        )
    )


def _mailing_chunks(database: Path) -> int:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        count = db.scalar(select(func.count()).select_from(models.MailingChunk))
    engine.dispose()
    return int(count or 0)


def test_a_mailings_letters_live_their_own_lives_and_share_the_content_to_the_last(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    """The real server with its own workers; only its wall clock moves
    (libfaketime): one recipient accepts, one refuses, one lets the window
    expire; the content, kept for a letter on legal hold, goes when the hold is lifted."""
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
            expiry_interval_s="0.5",
            retention_interval_s="0.5",
            content_retention_days="30",
            session_ttl_s=str(400 * 86400),
            # Only the server's clock moves (60 days): the signer's timestamps lag it.
            evidence_clock_skew_s=str(90 * 86400),
        ) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender, token = register_company(
            identity, server.enrolment_codes, "ls", "Syndic Lilas", "syndic@lilas.example"
        )
        consumers = [
            _consumer(identity, server.enrolment_codes, name, sender)
            for name in ("accepte", "refuse", "muet")
        ]
        owners = [owner for owner, _ in consumers]
        mailing = _mailing(
            custody, token, "ag-lilas", [(o.name, f"lot {i}") for i, o in enumerate(owners)]
        )
        letters = [r.letter for r in mailing.recipients]
        assert all(letters)
        wait_notified(custody, [custody_pb2.Letter(name=n) for n in letters], bearer(token))
        accepted, refused, silent = letters
        tokens = [str(token) for _, token in consumers]
        as_owner = [bearer(t) for t in tokens]

        # The recipient sees nothing of the sender's before accepting.
        before = custody.GetLetter(
            custody_pb2.GetLetterRequest(name=accepted), metadata=as_owner[0]
        )
        assert before.sender == "" and before.parts[0].filename == "part 1"
        custody.AcceptLetter(custody_pb2.AcceptLetterRequest(name=accepted), metadata=as_owner[0])
        assert _content(custody, accepted, tokens[0]) == CONVOCATION
        custody.RefuseLetter(
            custody_pb2.RefuseLetterRequest(name=refused, reason="pas concerné"),
            metadata=as_owner[1],
        )
        with pytest.raises(grpc.RpcError) as not_accepted:
            _content(custody, refused, tokens[1])
        assert not_accepted.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        clock.write_text("+17d\n")  # the third window closes unanswered
        request = custody_pb2.GetLetterRequest(name=silent)
        assert wait_for(
            lambda: (
                custody.GetLetter(request, metadata=bearer(token)).state
                == common_pb2.LETTER_STATE_EXPIRED
            ),
            timeout=30,
        ), server.log.read_text()[-2000:]
        progress = custody.GetMailing(
            custody_pb2.GetMailingRequest(name=mailing.name), metadata=bearer(token)
        ).progress
        assert (progress.accepted, progress.refused, progress.expired, progress.notified) == (
            1,
            1,
            1,
            0,
        )

        # Each letter's evidence, verified with openssl.
        expected = {
            accepted: [
                "SubmissionAcceptance",
                "NotificationForAcceptance",
                "ConsignmentAcceptance",
                "ContentHandover",
            ],
            refused: ["SubmissionAcceptance", "NotificationForAcceptance", "ConsignmentRejection"],
            silent: [
                "SubmissionAcceptance",
                "NotificationForAcceptance",
                "AcceptanceRejectionExpiry",
            ],
        }
        for name, events in expected.items():
            evidence = custody.ListEvidence(
                custody_pb2.ListEvidenceRequest(parent=name), metadata=bearer(token)
            ).evidence
            documents = [verify_seal(e, signer_process, tmp_path) for e in evidence]
            assert [d["event"].rsplit("/", 1)[-1] for d in documents] == events
            assert all(d["letterId"] == name for d in documents)
        report = b"".join(
            c.data
            for c in custody.GetMailingReport(
                custody_pb2.GetMailingReportRequest(name=mailing.name), metadata=bearer(token)
            )
        ).decode()
        rows = list(csv.DictReader(io.StringIO(report)))
        assert [r["state"] for r in rows] == ["accepted", "refused", "expired"]
        assert rows[0]["ContentHandover_evidence"] and rows[2]["AcceptanceRejectionExpiry_evidence"]

        # A legal hold on the accepted letter keeps the shared content past retention.
        custody.SetLegalHold(custody_pb2.SetLegalHoldRequest(name=accepted, legal_hold=True))
        clock.write_text("+60d\n")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)

        def purged(name: str) -> bool:
            engine = create_engine(f"sqlite:///{database}")
            with engine.connect() as db:
                when = db.scalar(
                    select(models.Letter.content_purge_time).where(
                        models.Letter.id == uuid.UUID(name.split("/")[1])
                    )
                )
            engine.dispose()
            return when is not None

        assert wait_for(lambda: purged(refused) and purged(silent), timeout=30)
        assert not purged(accepted)
        assert _mailing_chunks(database) > 0
        fresh = log_in(identity, owners[0], later)
        assert _content(custody, accepted, fresh) == CONVOCATION

        custody.SetLegalHold(custody_pb2.SetLegalHoldRequest(name=accepted, legal_hold=False))
        assert wait_for(lambda: _mailing_chunks(database) == 0, timeout=30)
        with pytest.raises(grpc.RpcError) as gone:
            _content(custody, accepted, fresh)
        assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # The evidence stays.
        assert (
            len(
                custody.ListEvidence(
                    custody_pb2.ListEvidenceRequest(parent=accepted), metadata=bearer(token)
                ).evidence
            )
            == 4
        )
