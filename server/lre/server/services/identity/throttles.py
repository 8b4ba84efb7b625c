"""Counting failures towards lockouts: per source, and per caller under a
ceiling.

A source is a caller certificate and the end user its portal forwards
(lre.server.domain.identity.Source): its lockout stops it alone, so that a
sender's gateway guessing a recipient's password cannot lock the recipient
out of its own portal, nor one portal user another. But the end user is the
caller's word: a caller that changed it at each attempt would get a fresh
allowance each time, and guess one party's password (or notice codes)
without end. So every failure is also counted under the caller's ceiling,
for all its end users together; at CALLER_CEILING_FACTOR times the
threshold that caller, all its end users, is locked out of the party, each
lockout in a row twice as long like a source's. Another caller (the party's
own portal, on its own certificate) is never affected. A success through
the caller clears both counts (the right secret shows the party is there);
the unlock code requested through it lifts both
(lre.server.services.identity.lockouts).

Rows are locked in one order, the source's before the caller's, so that
concurrent attempts queue rather than deadlock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from lre.server.domain.identity import Source, Throttle
from lre.server.domain.log import LogKind
from lre.server.services.identity.lockouts import lockout_counted
from lre.server.services.identity.parties import journaled
from lre.server.storage.store import Store

# A caller's end users together get ten times one source's allowance against
# a party: a busy portal's users mistyping now and then stay far below it
# (a success clears it), a caller cycling end-user values meets it after a
# few dozen guesses, a few thousand a day with the lockouts doubling.
CALLER_CEILING_FACTOR = 10
# A source (or caller) locked out again and again waits twice as long each
# time, up to 64 times the first lockout.
MAX_LOCKOUT_DOUBLINGS = 6


@dataclasses.dataclass(frozen=True)
class Lockout:
    """A lockout a failure earned: of the source, or of the whole caller."""

    scope: str  # "source" or "caller"
    until: dt.datetime
    length: dt.timedelta


def rows(store: Store, party_id: uuid.UUID, source: Source, prefix: str) -> list[Throttle]:
    """The source's row and its caller's (locked until the transaction ends)."""
    credentials = store.credentials
    return [credentials.throttle(party_id, prefix + key) for key in (source.key, source.caller)]


def locked_until(
    store: Store, party_id: uuid.UUID, source: Source, now: dt.datetime, prefix: str = ""
) -> dt.datetime | None:
    """When the source may try again, if it or its caller is locked out."""
    untils = [t.locked_until for t in rows(store, party_id, source, prefix) if t.locked(now)]
    return max((u for u in untils if u is not None), default=None)


def cleared(store: Store, party_id: uuid.UUID, source: Source, prefix: str = "") -> None:
    """After a success: the source's count and its caller's start again."""
    for key in (source.key, source.caller):
        store.credentials.clear_throttle(party_id, prefix + key)


def count_failure(
    store: Store,
    party_id: uuid.UUID,
    source: Source,
    now: dt.datetime,
    limits: tuple[int, dt.timedelta],
    prefix: str = "",
) -> tuple[int, list[Lockout]]:
    """One failure of ``source`` against the party, counted for it and its
    caller (``limits``: a source's threshold and first lockout): the source's
    failures in a row, and the lockouts this one earned (none, the source's,
    the caller's or both), saved but not yet journaled (``journal_lockouts``)."""
    threshold, lockout = limits
    own, ceiling = rows(store, party_id, source, prefix)
    earned = []
    for throttle, limit, scope in (
        (own, threshold, "source"),
        (ceiling, threshold * CALLER_CEILING_FACTOR, "caller"),
    ):
        failed = throttle.failed_attempts + 1
        if failed < limit:
            saved = dataclasses.replace(throttle, failed_attempts=failed)
        else:
            length = lockout * 2 ** min(throttle.lockouts, MAX_LOCKOUT_DOUBLINGS)
            until = now + length
            earned.append(Lockout(scope, until, length))
            saved = dataclasses.replace(
                throttle, failed_attempts=0, lockouts=throttle.lockouts + 1, locked_until=until
            )
        store.credentials.save_throttle(saved, now)
    return own.failed_attempts + 1, earned


def journal_lockouts(
    store: Store,
    party_id: uuid.UUID,
    now: dt.datetime,
    earned: list[Lockout],
    purpose: str,
    **fields: str,
) -> None:
    """Each lockout earned, journaled against the party (``scope``: the
    source, or the caller and all its end users) and counted when the
    party's acceptance window runs."""
    for lockout in earned:
        journaled(
            store,
            LogKind.LOCKED_OUT,
            party_id,
            now,
            purpose=purpose,
            scope=lockout.scope,
            lockedUntil=lockout.until,
            **fields,
        )
        lockout_counted(store, party_id, now, purpose)
