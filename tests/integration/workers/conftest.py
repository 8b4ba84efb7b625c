"""A world for the workers: the services over a database and the real
signer, a dispatcher to an SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import email
import email.header
import uuid
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from lre.server.domain import identity
from lre.server.domain.identity import AssuranceLevel, FactorCategory
from lre.server.domain.letters import EvidenceEvent, PartyKind
from lre.server.mail import SmtpTransport
from lre.server.services.custody import CustodyPolicy, CustodyService, DeclaredPart
from lre.server.services.identity import IdentityPolicy, IdentityService, NewParty
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.signing import SignerClient
from lre.server.storage import db, models
from lre.server.workers.outbox import OutboxDispatcher, RetryPolicy
from tests.conftest import SignerProcess
from tests.integration.services.conftest import KEY, Clock
from tests.support import free_port

SENDER_COMPANY = "Bailleur Zephyrin SARL"
SENDER_EMAIL = "gestion@zephyrin-bailleur.example"


class Inbox:
    """An SMTP server that keeps what it receives; ``refuse`` answers 550 to RCPT."""

    def __init__(self, port: int, refuse: bool = False) -> None:
        self.messages: list[Message] = []
        self.raw: list[bytes] = []
        self.refuse = refuse
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.raw.append(raw)
        self.messages.append(email.message_from_bytes(raw))
        return "250 Message accepted"

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


class World:
    def __init__(
        self, database_url: str, signer: SignerProcess, clock: Clock, smtp_port: int
    ) -> None:
        self.engine = db.make_engine(database_url)
        db.migrate(self.engine)
        sessions = db.sessions(self.engine)
        self.clock = clock
        self.signer = SignerClient(signer.grpc_address)
        self.identity = IdentityService(sessions, IdentityPolicy(secrets_key=KEY), clock)
        self.custody = CustodyService(
            sessions,
            self.identity,
            self.signer,
            CustodyPolicy("Test provider", 10**7, 399, "EUR"),
            clock,
        )
        self.notifications = NotificationService(
            sessions,
            NotificationPolicy(KEY, "LRE <notifications@lre.test>", "https://portal.lre.test"),
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
        self.session = identity.Session(
            party_id=str(sender.id),
            level=AssuranceLevel.HIGH,
            factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
            one_time_element=True,
            authenticated_at=clock.now,
            expires_at=clock.now + dt.timedelta(days=30),
        )

    def make_dispatcher(self, smtp_port: int) -> OutboxDispatcher:
        return OutboxDispatcher(
            db.sessions(self.engine),
            SmtpTransport("127.0.0.1", smtp_port, starttls=False, timeout_s=5),
            self.notifications,
            self.custody,
            RetryPolicy(max_attempts=5, first_delay=dt.timedelta(seconds=30)),
            self.clock,
        )

    def deposit(self, request_id: str | None = None) -> models.Letter:
        letter, _ = self.custody.deposit(
            self.session,
            request_id or str(uuid.uuid4()),
            self.recipient.id,
            [DeclaredPart("a.pdf", "application/pdf", 5)],
            iter([(0, b"%PDF!")]),
        )
        return letter

    def letter(self, letter_id: uuid.UUID) -> models.Letter:
        with db.sessions(self.engine)() as session:
            found = session.get(models.Letter, letter_id)
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

    def close(self) -> None:
        self.signer.close()
        self.engine.dispose()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def world(database_url: str, signer_process: SignerProcess, smtp_port: int) -> Iterator[World]:
    built = World(database_url, signer_process, Clock(), smtp_port)
    yield built
    built.close()
