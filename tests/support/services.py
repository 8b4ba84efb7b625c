"""What the service tests run on: a clock the test moves, one secrets key."""

from __future__ import annotations

import datetime as dt

from lre.server.adapters.at_rest import SecretsKeys
from lre.server.workers.outbox import quiet_until

KEY = SecretsKeys(bytes(range(32)))


class Clock:
    """Starts at the real time, or just after Paris midnight when the real time
    is within a quarter of an hour of it: a notice composed in the last minutes
    of a Paris day waits for midnight (it prints the day), and a test that
    deposits and drains at 23:58 in Paris would find its notice still queued.
    A test that needs the clock by the real TSA's sets ``now`` itself."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        midnight = quiet_until(now, dt.timedelta(minutes=15))
        self.now = now if midnight is None else midnight + dt.timedelta(seconds=1)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)
