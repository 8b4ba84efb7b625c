"""The unit of work over both databases: identity rows come back as the
records that went in, a transaction or a bare read alike, and a write the
database refuses as conflicting leaves it as the domain's WriteConflict."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator

import pytest

from lre.server.domain.errors import WriteConflict
from lre.server.domain.identity import Consent, Party
from lre.server.domain.letters import PartyKind
from lre.server.storage import db
from lre.server.storage.store import Stores

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def stores(database_url: str) -> Iterator[Stores]:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    yield Stores(db.sessions(engine))
    engine.dispose()


def _party(email: str) -> Party:
    return Party(
        id=uuid.uuid4(),
        kind=PartyKind.NATURAL_PERSON,
        professional=False,
        email=email,
        given_name="Léa",
        family_name="Martin",
        company_name=None,
        postal_address={"lines": ["3 rue des Lilas"], "postal_code": "75011"},
        create_time=NOW,
    )


def test_identity_rows_come_back_as_the_records_that_went_in(stores: Stores) -> None:
    recipient, sender = _party("lea@example.org"), _party("bailleur@example.org")
    consent = Consent(uuid.uuid4(), recipient.id, sender.id, "signed-form", NOW, None)
    with stores.begin() as store:
        store.parties.add(recipient, "gateway", "p-1", "hash-1")
        store.parties.add(sender, "gateway", "p-2", "hash-2")
        store.consents.add(consent, "portal", "c-1", "hash-3")
    with stores.read() as store:
        assert store.parties.get(recipient.id) == recipient
        assert store.parties.by_request("gateway", "p-2") == (sender, "hash-2")
        assert store.consents.active(recipient.id, sender.id) == consent
    # A bare read (no snapshot) sees the same, and the consent rule's one query.
    with stores.peek() as store:
        assert store.parties.get(sender.id) == sender
        assert store.consents.consenting(sender.id, [recipient.id, sender.id]) == {recipient.id}
    with stores.begin() as store:
        assert store.consents.withdraw(consent.id, NOW) == (
            dataclasses.replace(consent, withdraw_time=NOW),
            True,
        )
        assert store.consents.consenting(sender.id, [recipient.id]) == set()


def test_a_conflicting_write_is_a_write_conflict_and_leaves_nothing(stores: Stores) -> None:
    first = _party("lea@example.org")
    with stores.begin() as store:
        store.parties.add(first, "gateway", "p-1", "hash-1")
    # The same request key again (what a concurrent retry that lost does).
    second = _party("autre@example.org")
    with pytest.raises(WriteConflict), stores.begin() as store:
        store.proofing.spend_nonce("https://eid.example", "n-1", NOW)
        store.parties.add(second, "gateway", "p-1", "hash-2")
    with stores.read() as store:
        assert store.parties.get(second.id) is None
        assert store.parties.by_request("gateway", "p-1") == (first, "hash-1")
    # The nonce written before the conflict went with it: it is spent once now.
    with stores.begin() as store:
        store.proofing.spend_nonce("https://eid.example", "n-1", NOW)
    with pytest.raises(WriteConflict), stores.begin() as store:
        store.proofing.spend_nonce("https://eid.example", "n-1", NOW)
