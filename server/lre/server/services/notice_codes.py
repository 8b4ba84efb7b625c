"""Wrong notice verification codes (VerifyNotification, ClaimLetter): an
oracle on a letter's code, so counted per letter's recipient and per source
(the caller certificate and the end user its portal forwards), journaled
against the recipient naming the letter (counted per reference by whoever
reads the journal), and throttled like passwords: a source that keeps
guessing is locked out of that recipient's notices, each lockout in a row
twice as long; nobody else is. The same ceiling per caller as passwords
(lre.server.services.identity.throttles), under its own key: a caller
cycling end-user values is locked out of the recipient's notices, all its
end users, and no other caller. A reference that names no notified letter
is only counted (anyone may invent one, and the log is permanent)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.clock import utcnow
from lre.server.domain.errors import TooManyAttempts
from lre.server.domain.identity import Source
from lre.server.domain.log import LogKind
from lre.server.domain.records import LetterRecord
from lre.server.services.identity import throttles
from lre.server.services.identity.lockouts import NOTICE_PREFIX
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
        self, store: Store, letter: LetterRecord | None, genuine: bool, source: Source
    ) -> TooManyAttempts | None:
        """Records one attempt at ``letter``'s code in the caller's transaction,
        which must commit; the error to raise after it, if the source or its
        caller is (or now gets) locked out."""
        if letter is None:
            NOTICE_FAILURES.labels("unknown").inc()
            return None
        now = self.clock()
        party = letter.recipient_id
        # Attempts at one recipient's notices queue on its row: the counts of
        # a caller's end users meet on one ceiling row, created by the first.
        store.parties.lock(party)
        until = throttles.locked_until(store, party, source, now, SOURCE_PREFIX)
        if until is not None:
            return TooManyAttempts(LOCKED, (until - now).total_seconds())
        if genuine:
            throttles.cleared(store, party, source, SOURCE_PREFIX)
            return None
        NOTICE_FAILURES.labels("known").inc()
        limits = (self.threshold, self.lockout)
        failed, earned = throttles.count_failure(store, party, source, now, limits, SOURCE_PREFIX)
        letter_name = f"letters/{letter.id}"
        journaled(
            store,
            LogKind.AUTHENTICATION_FAILED,
            party,
            now,
            purpose="notice_code",
            reason="wrong_credentials",
            failedAttempts=failed,
            letter=letter_name,
        )
        if not earned:
            return None
        throttles.journal_lockouts(store, party, now, earned, "notice_code", letter=letter_name)
        return TooManyAttempts(LOCKED, max(e.length for e in earned).total_seconds())
