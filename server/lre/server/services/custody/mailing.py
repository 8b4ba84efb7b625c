"""Mailings: one document to many recipients in one deposit. The content is
encrypted once under one key bound to the mailing; each recipient who passes
gets a letter of its own, written exactly as a single deposit writes one (its
proof of deposit with the content digests, its notice, its charge, its log
entry); a recipient refused gets a sealed SubmissionRejection and never fails
the others. The content is read from the client into a spool first, with no
transaction open; then one short transaction: the mailing commits whole or
not at all."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from lre.server.adapters.signer import SignerClient, mailing_key_context
from lre.server.domain import identity
from lre.server.domain.errors import InvalidArgument, NotFound, RequestConflict, WriteConflict
from lre.server.domain.evidence import Delegate, PartDigest, PartyDetails
from lre.server.domain.letters import LetterState
from lre.server.domain.mailings import (
    MAX_RECIPIENTS,
    REASONS,
    MailingRecipientRecord,
    MailingRecord,
    duplicates,
    party_id,
    refusal,
)
from lre.server.domain.records import LetterRecord
from lre.server.services.custody.content import ContentSink, content_digests, spool_content
from lre.server.services.custody.content_store import ContentStore, DatabaseContent
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.intake import (
    DEPOSITS,
    DeclaredPart,
    Intake,
    check_declared_digests,
    check_envelope,
    check_same_content,
    check_same_delegate,
    new_letter,
)
from lre.server.services.custody.mailing_proofs import REFUSALS, as_found, rejection
from lre.server.services.custody.policy import CustodyPolicy
from lre.server.services.custody.report import report_lines
from lre.server.storage.objects import Owner
from lre.server.storage.store import Store, Stores


@dataclass(frozen=True)
class MailingView:
    """A mailing as its sender reads it: the recipients, and where its letters are."""

    mailing: MailingRecord
    recipients: list[MailingRecipientRecord]
    states: dict[LetterState, int]


class MailingService:
    def __init__(
        self,
        stores: Stores,
        signer: SignerClient,
        evidence: EvidenceRecorder,
        policy: CustodyPolicy,
        clock: Callable[[], dt.datetime],
        spool_dir: str | None = None,
        content: ContentStore | None = None,
    ) -> None:
        """``spool_dir``, ``content``: as a single deposit's (DepositService)."""
        self._stores = stores
        self._content = content or DatabaseContent()
        self._signer = signer
        self._evidence = evidence
        self._intake = Intake(evidence, policy)
        self._clock = clock
        self._spool_dir = spool_dir

    def deposit(
        self,
        session: identity.Session,
        request_id: str,
        reference: str,
        recipients: list[tuple[str, str]],
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        delegate: Delegate | None = None,
    ) -> MailingView:
        """``recipients``: (party name, the sender's letter reference), in order;
        ``delegate``: who acted for the sender, named in every proof of deposit."""
        now = self._clock()
        check_envelope(request_id, parts)
        if len(reference) > 200:
            raise InvalidArgument("envelope.reference", "at most 200 characters")
        if not 0 < len(recipients) <= MAX_RECIPIENTS:
            raise InvalidArgument("envelope.recipients", f"1 to {MAX_RECIPIENTS} recipients")
        for i, (name, letter_reference) in enumerate(recipients):
            if not name.strip():  # a caller's bug, not a recipient to refuse with a seal
                raise InvalidArgument(f"envelope.recipients[{i}].recipient", "required")
            if len(name) > 200 or len(letter_reference) > 200:
                raise InvalidArgument(f"envelope.recipients[{i}]", "at most 200 characters each")
        for again, first in duplicates([name for name, _ in recipients]).items():
            raise InvalidArgument(
                f"envelope.recipients[{again}].recipient",
                f"the same recipient as envelope.recipients[{first}]; name each recipient once",
            )
        self._intake.check_sender(session, now)
        self._intake.check_size(parts)
        sender_id = uuid.UUID(session.party_id)
        sizes = [p.size_bytes for p in parts]
        ids = [party_id(name) for name, _ in recipients]
        retry = (reference, recipients, parts, delegate)
        # A retry, or the checks before the content is read (made again when it is in).
        with self._stores.peek() as store:
            existing = store.mailings.by_request(sender_id, request_id)
            if existing is None:
                _, refused = self._refusals(store, sender_id, ids)
        if existing is not None:
            return self._replay(existing, *retry, lambda: content_digests(sizes, chunks))
        mailing_id = uuid.uuid4()
        spool: ContentSink | None = None
        committed = False
        try:
            wrapped = None
            if len(refused) < len(recipients):
                key = os.urandom(32)
                wrapped = self._signer.wrap_key(key, mailing_key_context(mailing_id))
                spool = self._content.sink(self._spool_dir)
                spool_content(mailing_id, key, sizes, chunks, spool)
                spool.finish()
                digests = spool.digests
            else:
                # Nobody to deliver to: the content is only hashed, for the refusals' proofs.
                digests = content_digests(sizes, chunks)
            check_declared_digests(parts, digests)
            try:
                view = self._record(
                    session,
                    mailing_id,
                    sender_id,
                    request_id,
                    reference,
                    recipients,
                    ids,
                    parts,
                    refused,
                    (wrapped, spool) if wrapped is not None and spool is not None else None,
                    digests,
                    delegate,
                )
            except WriteConflict:
                # The same request raced in from another call and won: the
                # content, already read, is compared with the winner's.
                with self._stores.read() as store:
                    existing = store.mailings.by_request(sender_id, request_id)
                if existing is None:
                    raise
                return self._replay(existing, *retry, lambda: digests)
            if spool is not None:
                committed = True
                if view.mailing.wrapped_key is not None:
                    self._content.committed(
                        Owner(mailing_id, mailing=True), spool.object_key, view.mailing.deposit_time
                    )
        finally:
            if spool is not None:
                if not committed or view.mailing.wrapped_key is None:
                    spool.discard()
                spool.close()
        DEPOSITS.labels("accepted").inc(sum(1 for r in view.recipients if r.letter_id))
        DEPOSITS.labels("rejected").inc(sum(1 for r in view.recipients if not r.letter_id))
        for r in view.recipients:
            if r.reason_code:
                REFUSALS.labels(r.reason_code).inc()
        return view

    @staticmethod
    def _refusals(
        store: Store, sender_id: uuid.UUID, ids: list[uuid.UUID | None]
    ) -> tuple[dict[uuid.UUID, tuple[PartyDetails, bool]], dict[int, str]]:
        """The parties found (NotFound without the sender), and the refused
        recipients' positions with their reason codes."""
        found = store.letters.parties([sender_id, *(i for i in ids if i)])
        if sender_id not in found:
            raise NotFound("no such party")
        consenting = store.consents.consenting(
            sender_id, (i for i in ids if i in found and not found[i][1])
        )
        return found, {
            position: code
            for position, party in enumerate(ids)
            if (code := refusal(party, found.get(party) if party else None, party in consenting))
        }

    def _record(
        self,
        session: identity.Session,
        mailing_id: uuid.UUID,
        sender_id: uuid.UUID,
        request_id: str,
        reference: str,
        recipients: list[tuple[str, str]],
        ids: list[uuid.UUID | None],
        parts: list[DeclaredPart],
        refused: dict[int, str],
        content: tuple[bytes, ContentSink] | None,
        digests: list[bytes],
        delegate: Delegate | None = None,
    ) -> MailingView:
        """The mailing's one write transaction, nothing in it waiting on the
        client: the recipients checked again (a consent withdrawn meanwhile;
        one refused before the content was read stays refused), then the
        mailing, its content (``content``: the wrapped key and the spool, when
        someone was to receive it), its letters and its refusals."""
        with self._stores.begin() as store:
            found, again = self._refusals(store, sender_id, ids)
            refusals = again | refused
            # The content is in and the checks hold: the letters' deposit time,
            # which their evidence names and the seals' timestamps must agree
            # with (check_times).
            now = self._clock()
            sender = dataclasses.replace(found[sender_id][0], delegate=delegate)
            passing = [p for p in range(len(recipients)) if p not in refusals]
            part_digests = tuple(
                PartDigest(p.filename, p.media_type, p.size_bytes, d.hex())
                for p, d in zip(parts, digests, strict=True)
            )
            wrapped = content[0] if content is not None and passing else None
            stored = content[1].stored() if content is not None and wrapped else None
            mailing = MailingRecord(
                mailing_id,
                sender_id,
                request_id,
                reference,
                now,
                [dataclasses.asdict(p) for p in part_digests],
                wrapped,
                None if wrapped else now,
                content_object=stored[0] if stored else None,
                content_digest=stored[1] if stored else None,
            )
            # The mailing first: its chunks refer to it.
            store.mailings.add(mailing)
            if content is not None and wrapped is not None:
                self._content.keep(
                    store, store.mailings.content, Owner(mailing_id, mailing=True), now, content[1]
                )

            letters = {
                position: new_letter(
                    uuid.uuid4(),
                    wrapped,
                    sender_id,
                    party,
                    f"mailings/{mailing_id}/{position}",
                    now,
                    LetterState.DEPOSITED,
                    mailing_id,
                )
                for position in passing
                if (party := ids[position]) is not None
            }
            # The letters before their parts, evidence and charges, which refer to them.
            store.letters.add(*letters.values())
            _, sealed = self._intake.accept(
                store,
                session,
                sender,
                [(letter, found[letter.recipient_id][0]) for letter in letters.values()],
                parts,
                digests,
                seal_with=[
                    rejection(
                        self._evidence,
                        mailing_id,
                        position,
                        sender,
                        as_found(recipients[position][0], ids[position], found),
                        now,
                        code,
                    )
                    for position, code in refusals.items()
                ],
            )
            rejection_of = dict(zip(refusals, sealed, strict=True))
            rows = [
                MailingRecipientRecord(
                    mailing_id,
                    position,
                    name,
                    letter_reference,
                    letter_id=letters[position].id if position in letters else None,
                    reason_code=refusals.get(position),
                    reason=REASONS[refusals[position]] if position in refusals else None,
                    evidence_id=rejection_of[position].id if position in refusals else None,
                    evidence_time=now if position in refusals else None,
                    evidence_document=(
                        rejection_of[position].document if position in refusals else None
                    ),
                    evidence_seal=rejection_of[position].seal if position in refusals else None,
                )
                for position, (name, letter_reference) in enumerate(recipients)
            ]
            store.mailings.add_recipients(rows)
            states = dict.fromkeys(LetterState, 0) | {LetterState.DEPOSITED: len(letters)}
            return MailingView(mailing, rows, states)

    def _replay(
        self,
        mailing: MailingRecord,
        reference: str,
        recipients: list[tuple[str, str]],
        parts: list[DeclaredPart],
        delegate: Delegate | None,
        digests: Callable[[], list[bytes]],
    ) -> MailingView:
        """A retried mailing gets the first result; the same request_id with
        another reference, delegate, recipients or content is refused, naming
        what differs. ``digests``: the retry's content, read (with no
        transaction open) only when it is to be compared."""
        view = self._view(mailing)
        if mailing.reference != reference:
            raise RequestConflict("envelope.reference", "request_id used for another reference")
        if [(r.recipient, r.letter_reference) for r in view.recipients] != recipients:
            raise RequestConflict("envelope.recipients", "request_id used for other recipients")
        # What the first deposit sealed for its first recipient names its delegate.
        sealed, letter_id = view.recipients[0].evidence_document, view.recipients[0].letter_id
        if sealed is None and letter_id is not None:
            with self._stores.read() as store:
                sealed = store.evidence.submission(letter_id)
        check_same_delegate(json.loads(sealed) if sealed else {}, delegate)
        check_same_content(
            [
                (p["filename"], p["media_type"], p["size_bytes"], bytes.fromhex(p["sha256"]))
                for p in mailing.parts
            ],
            parts,
            digests,
            "mailing",
        )
        return view

    # -- reading (the sender's only) -------------------------------------------

    def _view(self, mailing: MailingRecord) -> MailingView:
        with self._stores.read() as store:
            return MailingView(
                mailing,
                store.mailings.recipients(mailing.id),
                store.mailings.letter_states(mailing.id),
            )

    def _own(self, session: identity.Session, mailing_id: uuid.UUID) -> MailingRecord:
        with self._stores.read() as store:
            mailing = store.mailings.get(mailing_id)
        if mailing is None or mailing.sender_id != uuid.UUID(session.party_id):
            raise NotFound("no such mailing")
        return mailing

    def get(self, session: identity.Session, mailing_id: uuid.UUID) -> MailingView:
        return self._view(self._own(session, mailing_id))

    def page_for(
        self, session: identity.Session, page_size: int, page_token: str
    ) -> tuple[list[MailingView], str]:
        """The caller's mailings, newest first, with their progress but not their recipients."""
        with self._stores.read() as store:
            mailings, token = store.mailings.page_for(
                uuid.UUID(session.party_id), page_size, page_token
            )
            return [MailingView(m, [], store.mailings.letter_states(m.id)) for m in mailings], token

    def letters(
        self,
        session: identity.Session,
        mailing_id: uuid.UUID,
        state: LetterState | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[LetterRecord], str]:
        self._own(session, mailing_id)
        with self._stores.read() as store:
            return store.mailings.letters_page(mailing_id, state, page_size, page_token)

    def report(self, session: identity.Session, mailing_id: uuid.UUID) -> Iterator[str]:
        """CSV lines: per recipient its letter, state, refusal, and per step
        the time and the name of its evidence (GetEvidence fetches it sealed)."""
        mailing = self._own(session, mailing_id)
        with self._stores.read() as store:
            recipients = store.mailings.recipients(mailing_id)
            letters = store.mailings.letters(mailing_id)
            steps = store.mailings.evidence_steps(mailing_id)
        yield from report_lines(mailing, recipients, letters, steps)
