"""A recipient's consent to receive registered letters electronically from a
sender (CPCE L100): granted, withdrawn, listed, and checked at deposit. A
grant and a withdrawal are entries of the tamper-evident log, in the same
transaction: the provider cannot later deny or back-date either."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from lre.server.clock import utcnow
from lre.server.domain.errors import AlreadyExists, InvalidArgument, NotFound
from lre.server.domain.identity import Consent
from lre.server.domain.log import JournalRecord, LogKind, email_hmac
from lre.server.services.identity.parties import check_request_id, fingerprint, idempotent
from lre.server.services.identity.settings import Clock
from lre.server.storage.store import Store, Stores


class ConsentService:
    def __init__(self, stores: Stores, secrets_key: bytes, clock: Clock = utcnow) -> None:
        self._stores = stores
        self._key = secrets_key
        self._clock = clock

    def _log(self, store: Store, kind: LogKind, consent: Consent, at: dt.datetime) -> None:
        """Who (the two addresses, as keyed hashes), how, when."""
        recipient = store.parties.get(consent.recipient_id)
        sender = store.parties.get(consent.sender_id)
        assert recipient is not None and sender is not None
        store.log.append_journal(
            JournalRecord(
                kind,
                f"parties/{consent.recipient_id}/consents/{consent.id}",
                at,
                tuple(
                    sorted(
                        (
                            ("recipientEmailHmac", email_hmac(self._key, recipient.email)),
                            ("senderEmailHmac", email_hmac(self._key, sender.email)),
                            ("method", consent.method),
                            *(("actor", a) for a in [consent.actor] if a),
                            *(("formSha256", f) for f in [consent.form_sha256] if f),
                        )
                    )
                ),
            ),
            at,
        )

    def grant(
        self,
        scope: str,
        request_id: str,
        recipient_id: uuid.UUID,
        sender_id: uuid.UUID,
        method: str,
        form_sha256: str = "",
    ) -> Consent:
        """``scope`` is the caller the idempotency key belongs to, and the
        actor recorded with the consent (a caller certificate's name, or the
        recipient's own "parties/{id}"); ``form_sha256`` the SHA-256 (hex) of
        the consent form signed or shown."""
        check_request_id(request_id)
        if form_sha256 and not re.fullmatch("[0-9a-f]{64}", form_sha256.lower()):
            raise InvalidArgument("consent_form_sha256", "64 hexadecimal digits (SHA-256)")
        if not method or len(method) > 64:
            raise InvalidArgument(
                "method", "required: how the consent was given, at most 64 characters"
            )
        if recipient_id == sender_id:
            raise InvalidArgument("sender", "must differ from the recipient")

        def create(store: Store) -> Consent:
            for party, field in ((recipient_id, "recipient"), (sender_id, "sender")):
                if not store.parties.exists(party, erased=False):
                    raise NotFound(f"no such party ({field})")
            active = store.consents.active(recipient_id, sender_id)
            if active is not None:
                # Granted again: the consent in force, however asked. A form
                # other than the one it records is not silently dropped.
                if form_sha256 and active.form_sha256 != form_sha256.lower():
                    raise AlreadyExists(
                        "consent_form_sha256",
                        f"parties/{recipient_id}/consents/{active.id} is in force with"
                        " another form (or none); withdraw it first to record this one",
                    )
                return active
            consent = Consent(
                id=uuid.uuid4(),
                recipient_id=recipient_id,
                sender_id=sender_id,
                method=method,
                grant_time=self._clock(),
                withdraw_time=None,
                actor=scope or None,
                form_sha256=form_sha256.lower() or None,
            )
            store.consents.add(consent, scope, request_id, request_hash)
            self._log(store, LogKind.CONSENT_GRANTED, consent, consent.grant_time)
            return consent

        form = [form_sha256.lower()] if form_sha256 else []
        request_hash = fingerprint(str(recipient_id), str(sender_id), method, *form)
        return idempotent(
            self._stores,
            request_hash,
            lambda store: store.consents.by_request(scope, request_id),
            create,
        )

    def withdraw(self, recipient_id: uuid.UUID, consent_id: uuid.UUID) -> Consent:
        """The recipient's consent, withdrawn; another party's is not found."""
        with self._stores.begin() as store:
            consent = store.consents.get(consent_id)
            if consent is None or consent.recipient_id != recipient_id:
                raise NotFound("no such consent")
            now = self._clock()
            changed = store.consents.withdraw(consent_id, now)
            assert changed is not None
            withdrawn, withdrawing = changed
            if withdrawing:  # withdrawn once, logged once
                self._log(store, LogKind.CONSENT_WITHDRAWN, withdrawn, now)
        return withdrawn

    def list(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        with self._stores.read() as store:
            return store.consents.page(recipient_id, page_size, page_token)

    def has(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        with self._stores.read() as store:
            return recipient_id in store.consents.consenting(sender_id, [recipient_id])
