"""A world for the custody, notification and worker tests: the services over
a database and the real signer, a dispatcher to an SMTP server on 127.0.0.1
(an ``Inbox`` of tests.support.mail)."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable

from lre.server.adapters.mail import SmtpTransport
from lre.server.adapters.object_store import ObjectStore
from lre.server.adapters.signer import ContentKeys, SignerClient
from lre.server.domain import identity
from lre.server.domain.identity import AssuranceLevel, FactorCategory, ProfessionalBasis
from lre.server.domain.letters import EvidenceEvent, PartyKind
from lre.server.domain.records import LetterRecord
from lre.server.proofs import proof_pdf
from lre.server.services.custody import (
    CustodyPolicy,
    CustodyQueries,
    DecisionService,
    DeclaredPart,
    DepositService,
    EvidenceRecorder,
)
from lre.server.services.custody.content_store import (
    ContentStore,
    DatabaseContent,
    ObjectContent,
)
from lre.server.services.identity import (
    IdentityPolicy,
    IdentityService,
    NewParty,
    ProfessionalDecision,
)
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.storage import db, models
from lre.server.storage.store import Stores
from lre.server.workers.expiry import ExpirySweep
from lre.server.workers.outbox import OutboxDispatcher, RetryPolicy
from lre.server.workers.retention import RetentionPurge
from lre.server.workers.signer_watch import SignerOutage
from tests.support.mail import Inbox
from tests.support.services import KEY, Clock
from tests.support.signer import SignerProcess

EVIDENCE_POLICY = "2.999.319522.1"
SKEW = dt.timedelta(days=3650)

SENDER_COMPANY = "Bailleur Zephyrin SARL"
SENDER_EMAIL = "gestion@zephyrin-bailleur.example"


class World:
    def __init__(
        self,
        database_url: str,
        signer: SignerProcess,
        clock: Clock,
        smtp_port: int,
        objects: ObjectStore | None = None,
    ) -> None:
        """``objects``: the object store content is kept in (None: the database)."""
        self.engine = db.make_engine(database_url)
        db.migrate(self.engine)
        sessions = db.sessions(self.engine)
        self.clock = clock
        self.signer = SignerClient(signer.grpc_address)
        self.stores = Stores(sessions)
        self.identity = IdentityService(self.stores, IdentityPolicy(secrets_key=KEY), clock)
        self.policy = policy = CustodyPolicy("Test provider", 10**7, 399, "EUR")
        # The clock here jumps days ahead of the real TSA's: the time check is
        # widened for it (test_evidence_v2.py of the custody services keeps it strict).
        self.evidence = EvidenceRecorder(
            self.signer, policy.provider_name, EVIDENCE_POLICY, clock, clock_skew=SKEW
        )
        self.objects = objects
        self.content: ContentStore = (
            DatabaseContent()
            if objects is None
            else ObjectContent(self.stores, objects, policy.content_retention, clock)
        )
        self.deposits = DepositService(
            self.stores,
            ContentKeys(self.signer),
            self.evidence,
            policy,
            clock,
            content=self.content,
        )
        self.decisions = DecisionService(
            self.stores, self.signer, self.evidence, policy.reminder_days, clock, self.content
        )
        self.proofs = StoredProofs(
            self.stores, functools.partial(proof_pdf, signer=self.signer), clock
        )
        self.queries = CustodyQueries(self.stores, self.proofs)
        self.expiry = ExpirySweep(self.stores, self.evidence, clock)
        self.retention = RetentionPurge(self.stores, policy.content_retention, clock)
        self.notifications = NotificationService(
            self.stores,
            NotificationPolicy(KEY, "LRE <notifications@lre.test>", "https://portal.lre.test"),
            self.proofs,
        )
        self.dispatcher = self.make_dispatcher(smtp_port)
        sender = self.identity.parties.create(
            "gateway",
            "s",
            NewParty(PartyKind.LEGAL_PERSON, True, SENDER_EMAIL, company_name=SENDER_COMPANY),
        )
        self.recipient = self.identity.parties.create(
            "gateway",
            "r",
            NewParty(
                PartyKind.LEGAL_PERSON,
                True,
                "courrier@destinataire.example",
                company_name="Dest SA",
            ),
        )
        # Both companies are professionals on an operator's recorded decision
        # (a journal entry each), which spares the sender the recipient's consent.
        for party in (sender, self.recipient):
            self.identity.parties.set_professional(
                party.id,
                ProfessionalDecision(True, ProfessionalBasis.OPERATOR, "Kbis extract", "desk"),
            )
        self.session = identity.Session(
            party_id=str(sender.id),
            level=AssuranceLevel.HIGH,
            factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
            one_time_element=True,
            authenticated_at=clock.now,
            expires_at=clock.now + dt.timedelta(days=30),
        )

    def make_dispatcher(
        self, smtp_port: int, give_way: Callable[[], object] = lambda: None
    ) -> OutboxDispatcher:
        return OutboxDispatcher(
            self.stores,
            SmtpTransport("127.0.0.1", smtp_port, starttls=False, timeout_s=5),
            self.notifications,
            self.decisions,
            RetryPolicy(max_attempts=5, first_delay=dt.timedelta(seconds=30)),
            self.clock,
            SignerOutage(),
            give_way=give_way,
        )

    def deposit(self, request_id: str | None = None) -> LetterRecord:
        letter, _ = self.deposits.deposit(
            self.session,
            request_id or str(uuid.uuid4()),
            self.recipient.id,
            [DeclaredPart("a.pdf", "application/pdf", 5)],
            iter([(0, b"%PDF!")]),
        )
        return letter

    def letter(self, letter_id: uuid.UUID) -> LetterRecord:
        with self.stores.read() as store:
            found = store.letters.get(letter_id)
        assert found is not None
        return found

    def events(self, letter_id: uuid.UUID) -> list[EvidenceEvent]:
        with db.sessions(self.engine)() as session:
            return [
                e.event
                for e in session.query(models.Evidence)
                .filter_by(letter_id=letter_id)
                .order_by(models.Evidence.event_time)
            ]

    def recipient_session(self) -> identity.Session:
        return identity.Session(
            party_id=str(self.recipient.id),
            level=AssuranceLevel.SUBSTANTIAL,
            factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
            one_time_element=True,
            authenticated_at=self.clock.now,
            expires_at=self.clock.now + dt.timedelta(minutes=30),
        )

    def drain(self) -> None:
        """Dispatches until nothing is due; the retentions queued set."""
        while self.dispatcher.dispatch_one():
            pass
        if isinstance(self.content, ObjectContent):
            assert self.content.settle()

    def notified(self, count: int, smtp_port: int) -> list[LetterRecord]:
        """``count`` letters deposited and their recipient notified."""
        letters = [self.deposit() for _ in range(count)]
        self.clock.advance(seconds=2)
        with Inbox(smtp_port):
            self.drain()
        return letters

    def objects_of_mailing(self, mailing_id: uuid.UUID) -> str | None:
        with self.stores.read() as store:
            return store.objects.mailing_object(mailing_id)

    def close(self) -> None:
        self.content.close()
        self.signer.close()
        self.engine.dispose()
