"""A party's personal data: erased once past its retention schedule or on
its request where the law allows (domain.retention), and exported to it
(GDPR art. 15 and 20). Each erasure and export is journaled in the same
transaction; the journal entry says what went, never what it was."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import uuid
from typing import Any

from lre.server.clock import utcnow
from lre.server.domain import journal
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from lre.server.domain.letters import known_to_recipient, sender_visible_to_recipient
from lre.server.domain.log import LogKind
from lre.server.domain.retention import (
    ErasureBasis,
    PersonalDataKind,
    RetentionSchedule,
    erasure_refusal,
    past_schedule,
)
from lre.server.services.identity.settings import Clock
from lre.server.storage.store import Store, Stores

EXPORT_FORMAT = "lre-personal-data/1"


class ErasureService:
    def __init__(self, stores: Stores, schedule: RetentionSchedule, clock: Clock = utcnow) -> None:
        self._stores = stores
        self.schedule = schedule
        self._clock = clock

    def _erase(
        self,
        store: Store,
        party_id: uuid.UUID,
        basis: ErasureBasis,
        now: dt.datetime,
        operator_id: str = "",
        operator_certificate: str = "",
    ) -> dict[PersonalDataKind, int]:
        counts = store.personal_data.erase(party_id, now)
        store.log.append_journal(
            journal.salted_entry(
                LogKind.PARTY_ERASED,
                f"parties/{party_id}",
                now,
                basis=basis.value,
                erased=",".join(f"{k.value}={n}" for k, n in sorted(counts.items(), key=_kind)),
                operatorId=operator_id or None,
                operatorCertificate=operator_certificate or None,
            ),
            now,
        )
        return counts

    def erase_on_request(
        self, party_id: uuid.UUID, operator_id: str, operator_certificate: str
    ) -> dict[PersonalDataKind, int]:
        """An operator erases the party's data on its request (art. 17);
        ErasureRefused (FAILED_PRECONDITION with its reason) while the law keeps it."""
        if not operator_id or len(operator_id) > 100:
            raise InvalidArgument("operator_id", "required, at most 100 characters")
        now = self._clock()
        with self._stores.begin() as store:
            party = store.personal_data.lock_party(party_id)
            if party is None:
                raise NotFound("no such party")
            if party.erase_time is not None:
                raise FailedPrecondition("the party's personal data is already erased")
            refusal = erasure_refusal(store.personal_data.letters_of(party_id), now)
            if refusal is not None:
                raise refusal
            return self._erase(
                store, party_id, ErasureBasis.REQUEST, now, operator_id, operator_certificate
            )

    def erase_due(self, batch: int) -> dict[PersonalDataKind, int]:
        """Up to ``batch`` parties past their schedule erased, one transaction
        each (a party that gained a letter since is checked again and kept)."""
        now = self._clock()
        with self._stores.read() as store:
            due = store.personal_data.due(now, self.schedule, batch)
        total: dict[PersonalDataKind, int] = {}
        for party_id in due:
            with self._stores.begin() as store:
                party = store.personal_data.lock_party(party_id)
                if party is None or party.erase_time is not None:
                    continue
                letters = store.personal_data.letters_of(party_id)
                if not past_schedule(letters, party.create_time, now, self.schedule):
                    continue
                for kind, count in self._erase(store, party_id, ErasureBasis.SCHEDULE, now).items():
                    total[kind] = total.get(kind, 0) + count
        return total

    def delete_old_sessions(self, batch: int) -> int:
        """Sessions ended longer ago than the schedule keeps them."""
        with self._stores.begin() as store:
            return store.personal_data.delete_old_sessions(
                self._clock() - self.schedule.sessions, batch
            )

    def export(self, party_id: uuid.UUID, actor: str) -> bytes:
        """What the service holds on the party, as JSON (art. 15 and 20): its
        row, identity records, consents, corrections and letters. Journaled
        (who asked); secrets (password hashes, TOTP seeds, code HMACs) are
        not the party's data to carry elsewhere and stay out."""
        now = self._clock()
        with self._stores.begin() as store:
            party = store.parties.get(party_id)
            if party is None:
                raise NotFound("no such party")
            held = store.personal_data.export(party_id)
            store.log.append_journal(
                journal.salted_entry(
                    LogKind.PERSONAL_DATA_EXPORTED, f"parties/{party_id}", now, actor=actor
                ),
                now,
            )
        document = {
            "format": EXPORT_FORMAT,
            "exportTime": now,
            "party": dataclasses.asdict(party),
            "identityRecords": [
                {k: v for k, v in dataclasses.asdict(r).items() if k != "digest_salt"}
                for r in held["identity_records"]
            ],
            "consents": [dataclasses.asdict(c) for c in held["consents"]],
            "corrections": held["corrections"],
            "letters": [
                _as_known_to(party_id, letter)
                for letter in held["letters"]
                if letter["sender_id"] == party_id or known_to_recipient(letter["state"])
            ],
            "sessions": held["sessions"],
        }
        return json.dumps(document, sort_keys=True, indent=1, default=_plain).encode()


def _as_known_to(party_id: uuid.UUID, letter: dict[str, Any]) -> dict[str, Any]:
    """A letter as the party may know it: its recipient is not told the
    sender before accepting (R53-3 I), in an export as in GetLetter."""
    shown = {k: v for k, v in letter.items() if k != "recipient_id"}
    if letter["sender_id"] != party_id and not sender_visible_to_recipient(letter["state"]):
        shown["sender_id"] = None
    return shown


def _kind(item: tuple[PersonalDataKind, int]) -> str:
    return item[0].value


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
