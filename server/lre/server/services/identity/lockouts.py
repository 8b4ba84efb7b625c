"""Lifting a lockout through the party's mailbox, and counting the lockouts
that matter most.

A lockout stops one source (lre.server.services.identity.credentials), so
a party that locked itself out (a mistyped password at its own portal) is
the one that needs a way back before the lockout ends: its acceptance window
runs meanwhile. The locked-out source asks for an unlock code; the code goes
to the party's registered e-mail address through the outbox, never to the
caller, and is kept on that source's row only, so another source's request
neither replaces it nor is lifted by it. The right code lifts that source's
lockouts (sessions and notice codes) and its caller's ceiling
(lre.server.services.identity.throttles: the party, from its mailbox, lets
that caller in again), and nothing else: the password is still needed to
sign in. A wrong code spends it (one guess per e-mail, and e-mails are
limited to one a minute per locked source; while its caller's ceiling is
locked, which every end user of the caller may then claim, one a minute per
caller).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets
import uuid

from prometheus_client import Counter

from lre.server.clock import utcnow
from lre.server.domain.errors import FailedPrecondition, TooManyAttempts
from lre.server.domain.identity import Source, Throttle
from lre.server.domain.log import LogKind
from lre.server.services.identity import factors
from lre.server.services.identity.parties import journaled
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.storage.store import Store, Stores

PURPOSES = ("session", "enrolment", "email_code", "notice_code")
IN_WINDOW = Counter(
    "lre_identity_lockouts_in_window",
    "Lockouts of a source from a party with a letter awaiting its decision (the "
    "acceptance window runs meanwhile), by what was attempted.",
    ["purpose"],
)
for _purpose in PURPOSES:
    IN_WINDOW.labels(_purpose)
UNLOCKS = Counter(
    "lre_identity_unlocks", "Lockouts lifted with an unlock code, by outcome.", ["outcome"]
)
for _outcome in ("unlocked", "wrong_code"):
    UNLOCKS.labels(_outcome)

UNLOCK_CODE_TTL = dt.timedelta(minutes=10)
UNLOCK_CODE_INTERVAL = dt.timedelta(minutes=1)
# Notice-code failures are kept under the same source with this prefix
# (lre.server.services.notice_codes).
NOTICE_PREFIX = "notice:"
NOT_LOCKED = "this caller is not locked out of this party: nothing to unlock"
REFUSED = "wrong or expired unlock code; ask for another"


def lockout_counted(store: Store, party_id: uuid.UUID, now: dt.datetime, purpose: str) -> None:
    """After a lockout of some source from ``party_id``, in its transaction:
    counted apart when the party has a letter in its acceptance window (the
    alert LreLockoutsInAcceptanceWindow watches these)."""
    if store.letters.in_window(party_id, now):
        IN_WINDOW.labels(purpose if purpose in PURPOSES else "session").inc()


def _code_hmac(policy: IdentityPolicy, code_id: uuid.UUID, code: str) -> bytes:
    return hmac.digest(
        policy.secrets_key.current, b"unlock\n" + code_id.bytes + code.encode(), "sha256"
    )


class UnlockService:
    def __init__(self, stores: Stores, policy: IdentityPolicy, clock: Clock = utcnow) -> None:
        self._stores = stores
        self._policy = policy
        self._clock = clock

    def send_code(self, party_id: uuid.UUID, source: Source) -> tuple[uuid.UUID, dt.datetime]:
        """Six digits to the party's e-mail address, for ``source`` (who asks:
        it or its caller must be locked out of the party); it replaces that
        source's outstanding code. Returns the code's id and expiry."""
        now = self._clock()
        with self._stores.begin() as store:
            # A party that does not exist has no lockout either: the same answer.
            throttle, notice, ceiling, notice_ceiling = self._throttles(store, party_id, source)
            if not any(t.locked(now) for t in (throttle, notice, ceiling, notice_ceiling)):
                raise FailedPrecondition(NOT_LOCKED)
            # Any end user of a caller locked out as a whole may ask: one code
            # a minute for them all, or the party's mailbox is flooded.
            by_caller = ceiling.locked(now) or notice_ceiling.locked(now)
            for row in (throttle, ceiling) if by_caller else (throttle,):
                sent = row.unlock_code_sent_time
                if sent is not None and now < sent + UNLOCK_CODE_INTERVAL:
                    raise TooManyAttempts(
                        "an unlock code was sent less than a minute ago",
                        (sent + UNLOCK_CODE_INTERVAL - now).total_seconds(),
                    )
            if by_caller:
                store.credentials.save_throttle(
                    dataclasses.replace(ceiling, unlock_code_sent_time=now), now
                )
            code_id, code = uuid.uuid4(), f"{secrets.randbelow(10**6):06d}"
            expire_time = now + UNLOCK_CODE_TTL
            store.credentials.save_throttle(
                dataclasses.replace(
                    throttle,
                    unlock_code_hmac=_code_hmac(self._policy, code_id, code),
                    unlock_code_sent_time=now,
                    unlock_code_expire_time=expire_time,
                ),
                now,
            )
            factors.queue_email_code(
                store,
                self._policy.secrets_key,
                party_id,
                (code_id, code),
                expire_time,
                now,
                purpose="unlock",
            )
            journaled(
                store,
                LogKind.UNLOCK_CODE_ISSUED,
                party_id,
                now,
                codeId=str(code_id),
                expireTime=expire_time,
            )
        return code_id, expire_time

    def unlock(self, party_id: uuid.UUID, code_id: uuid.UUID, code: str, source: Source) -> None:
        """Lifts ``source``'s lockouts from the party, and its caller's, with
        the code e-mailed at its request; their counts of lockouts in a row
        start again. A wrong code spends the outstanding one
        (FailedPrecondition after commit)."""
        now = self._clock()
        failure: Exception | None = None
        with self._stores.begin() as store:
            throttle, *others = self._throttles(store, party_id, source)
            expected = throttle.unlock_code_hmac
            good = (
                expected is not None
                and throttle.unlock_code_expire_time is not None
                and now < throttle.unlock_code_expire_time
                and hmac.compare_digest(expected, _code_hmac(self._policy, code_id, code.strip()))
            )
            spent = dataclasses.replace(
                throttle, unlock_code_hmac=None, unlock_code_expire_time=None
            )
            if not good:
                UNLOCKS.labels("wrong_code").inc()
                failure = FailedPrecondition(REFUSED)
                # With no code outstanding there is nothing to guess: counted
                # only (anyone may name any party, and the journal is permanent).
                if expected is not None:
                    store.credentials.save_throttle(spent, now)
                    journaled(
                        store,
                        LogKind.AUTHENTICATION_FAILED,
                        party_id,
                        now,
                        purpose="unlock",
                        reason="wrong_credentials",
                    )
            else:
                UNLOCKS.labels("unlocked").inc()
                # The sent time stays: the next code still waits its minute.
                store.credentials.save_throttle(
                    dataclasses.replace(spent, failed_attempts=0, lockouts=0, locked_until=None),
                    now,
                )
                for other in others:
                    store.credentials.clear_throttle(party_id, other.source)
                journaled(store, LogKind.UNLOCKED, party_id, now)
        if failure is not None:
            raise failure

    @staticmethod
    def _throttles(store: Store, party_id: uuid.UUID, source: Source) -> list[Throttle]:
        """The source's rows, then its caller's: authentication failures
        (the source's holds the unlock code) and notice-code failures."""
        credentials = store.credentials
        return [
            credentials.throttle(party_id, prefix + key)
            for key in (source.key, source.caller)
            for prefix in ("", NOTICE_PREFIX)
        ]
