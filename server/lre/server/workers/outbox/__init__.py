"""The outbox dispatcher: sends what state changes wrote to the outbox.

Three steps, each its own short transaction, none held while the mail server
is talked to (on SQLite a transaction holds the one write lock; the record
of a notice holds its letter while the signer seals its evidence):

1. **Claim.** Due messages become SENDING with their attempt counted and a
   lease (``claimed_until``), committed; rows another dispatcher holds are
   skipped (FOR UPDATE SKIP LOCKED), so any number of dispatchers may run.
2. **Send**, with the Message-ID of the outbox row (the same on every attempt).
3. **Record**, with the instant the hand-off *returned*: SENT and its
   ``sent_time``. For a recipient's notice that instant is the notification
   (R53-3 I): NotificationForAcceptance is sealed dated then, in the same
   transaction, and the 15-day window opens from its Paris day. If the
   sealing fails (the signer down), only it is undone (a savepoint): the
   message stays SENT (never sent again) and ``NoticeSealer`` (``notices``)
   seals the notice later, dated at the hand-off (docs/evidence.md, "Time",
   bounds how much later).

A temporary failure puts the message back with its own backoff; a permanent
one, or too many attempts, fails it (and a notice's failure is an evidence).
Each message is settled on its own: one failing message never holds others.

**Delivery guarantee: at least once, and at most one resend per crash.** A
dispatcher that dies between the hand-off and the record leaves the message
SENDING; once its lease runs out another dispatcher (or the same one,
restarted) claims it again and sends it once more, with the same Message-ID,
so the receiving side can tell it is the same message. Such a message reads
``resends`` > 0 (and ``attempts`` counts every hand-off tried), and each is
counted in ``lre_notifications_resent_total``. A record that fails while the
process lives (the database cut) is retried from memory, not resent. The lease
must outlast a hand-off (several SMTP timeouts): a message of a batch is
handed off only while at least half its lease is left (else it goes back to
the queue unsent), and a hand-off that overran the rest finds its claim taken
and records nothing (settle returns False): the message may then have gone
twice, and that too reads ``resends``. A graceful stop (SIGTERM) finishes the
batch in hand: no resend.

**Printed deadline and recorded window agree.** The notice prints the last
day of the window counted from the day it is composed; it is recorded from
the day its hand-off returned. No notice is composed during the last
``lease`` before midnight, Paris time: those wait until just after midnight,
so both days are the same.

The dispatcher (``dispatcher``) makes each message from the rows it names
(``compose``); the notice sealer (``notices``) is a loop of its own.
"""

from lre.server.workers.outbox.dispatcher import OutboxDispatcher, RetryPolicy, quiet_until
from lre.server.workers.outbox.notices import NoticeSealer

__all__ = ["NoticeSealer", "OutboxDispatcher", "RetryPolicy", "quiet_until"]
