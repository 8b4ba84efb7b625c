"""One transaction and the repositories over it: what a use case works in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import WriteConflict
from lre.server.storage.archive import ArchiveRepository
from lre.server.storage.credentials import CredentialRepository, SessionRepository
from lre.server.storage.db import engine_of, reader
from lre.server.storage.erasure import PersonalDataRepository
from lre.server.storage.evidence import ChargeRepository, EvidenceRepository
from lre.server.storage.keys import KeyRepository
from lre.server.storage.letters import ContentRepository, LetterRepository
from lre.server.storage.log import LogRepository
from lre.server.storage.mailings import MailingRepository
from lre.server.storage.objects import ObjectRepository
from lre.server.storage.outbox import OutboxRepository
from lre.server.storage.parties import ConsentRepository, PartyRepository
from lre.server.storage.proofing import ProofingRepository
from lre.server.storage.records import Db
from lre.server.storage.webhooks import WebhookRepository


class Store:
    def __init__(self, db: Db) -> None:
        self._db = db
        # Custody.
        self.letters = LetterRepository(db)
        self.content = ContentRepository(db)
        self.evidence = EvidenceRepository(db)
        self.archive = ArchiveRepository(db)
        self.charges = ChargeRepository(db)
        self.mailings = MailingRepository(db)
        self.objects = ObjectRepository(db)
        self.outbox = OutboxRepository(db)
        self.log = LogRepository(db)
        self.webhooks = WebhookRepository(db)
        # Identity.
        self.parties = PartyRepository(db)
        self.consents = ConsentRepository(db)
        self.proofing = ProofingRepository(db)
        self.credentials = CredentialRepository(db)
        self.sessions = SessionRepository(db)
        self.personal_data = PersonalDataRepository(db)
        # What is encrypted under keys that rotate.
        self.keys = KeyRepository(db)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """What the block writes is undone alone if it raises (the exception
        goes on); the transaction around it goes on too."""
        with self._db.begin_nested():
            yield


class Stores:
    """Opens stores: ``begin()`` for a transaction that commits when the block
    ends without an exception, ``read()`` for reads.

    A write the database refuses as conflicting (IntegrityError: a unique key
    taken, most often by a concurrent request), raised by a repository's
    statement or at commit, leaves the block as the domain's WriteConflict,
    after the transaction has rolled back."""

    def __init__(self, sessions: sessionmaker[DbSession]) -> None:
        self._sessions = sessions

    @property
    def sqlite(self) -> bool:
        return bool(self._sessions.kw["bind"].dialect.name == "sqlite")

    @contextmanager
    def begin(self) -> Iterator[Store]:
        try:
            with self._sessions.begin() as db:
                yield Store(db)
        except IntegrityError as exc:
            # Not the database's message: it names the conflicting values.
            raise WriteConflict("the write conflicts with one committed meanwhile") from exc

    @contextmanager
    def read(self) -> Iterator[Store]:
        with self._sessions() as db:
            yield Store(db)

    @contextmanager
    def peek(self) -> Iterator[Store]:
        """For reads that need no snapshot (a check that a write transaction
        makes again, a bearer token looked up on every call): on PostgreSQL in
        autocommit, which spares the BEGIN and ROLLBACK round trips (see db.reader)."""
        with reader(engine_of(self._sessions)) as connection:
            yield Store(connection)
