"""Wrong notice verification codes (VerifyNotification, ClaimLetter): an
oracle on a letter's code, so counted per letter's recipient and per source
(the caller certificate and the end user its portal forwards), journaled
against the recipient naming the letter (counted per reference by whoever
reads the journal), and throttled like passwords: a source that keeps
guessing is locked out of that recipient's notices, each lockout in a row
twice as long; nobody else is. A reference that names no notified letter is
only counted (anyone may invent one, and the log is permanent)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.clock import utcnow
from lre.server.domain.errors import TooManyAttempts
from lre.server.domain.log import LogKind
from lre.server.domain.records import LetterRecord
from lre.server.services.identity.credentials import MAX_LOCKOUT_DOUBLINGS
from lre.server.services.identity.lockouts import NOTICE_PREFIX, lockout_counted
from lre.server.services.identity.parties import journaled
from lre.server.storage.store import Store

NOTICE_FAILURES = Counter(
    "lre_notice_code_failures",
    "Wrong notice verification codes, by whether the reference named a notified letter.",
    ["reference"],
)
for _known in ("known", "unknown"):
    NOTICE_FAILURES.labels(_known)
LOCKED = "too many wrong codes for this notice from this caller; retry later"
# Notice-code failures are counted apart from the same source's password
# failures against the same party: neither kind spends the other's allowance.
SOURCE_PREFIX = NOTICE_PREFIX


@dataclasses.dataclass(frozen=True)
class NoticeCodes:
    threshold: int = 10
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    clock: Callable[[], dt.datetime] = utcnow

    def attempt(
        self, store: Store, letter: LetterRecord | None, genuine: bool, source: str
    ) -> TooManyAttempts | None:
        """Records one attempt at ``letter``'s code in the caller's transaction,
        which must commit; the error to raise after it, if the source is (or
        now gets) locked out."""
        if letter is None:
            NOTICE_FAILURES.labels("unknown").inc()
            return None
        now = self.clock()
        credentials = store.credentials
        party = letter.recipient_id
        throttle = credentials.throttle(party, SOURCE_PREFIX + source)
        if throttle.locked(now):
            assert throttle.locked_until is not None
            return TooManyAttempts(LOCKED, (throttle.locked_until - now).total_seconds())
        if genuine:
            credentials.clear_throttle(party, throttle.source)
            return None
        NOTICE_FAILURES.labels("known").inc()
        failed = throttle.failed_attempts + 1
        journaled(
            store,
            LogKind.AUTHENTICATION_FAILED,
            party,
            now,
            purpose="notice_code",
            reason="wrong_credentials",
            failedAttempts=failed,
            letter=f"letters/{letter.id}",
        )
        if failed < self.threshold:
            credentials.save_throttle(dataclasses.replace(throttle, failed_attempts=failed), now)
            return None
        lockout = self.lockout * 2 ** min(throttle.lockouts, MAX_LOCKOUT_DOUBLINGS)
        until = now + lockout
        credentials.save_throttle(
            dataclasses.replace(
                throttle, failed_attempts=0, lockouts=throttle.lockouts + 1, locked_until=until
            ),
            now,
        )
        journaled(
            store,
            LogKind.LOCKED_OUT,
            party,
            now,
            purpose="notice_code",
            lockedUntil=until,
            letter=f"letters/{letter.id}",
        )
        lockout_counted(store, party, now, "notice_code")
        return TooManyAttempts(LOCKED, lockout.total_seconds())
