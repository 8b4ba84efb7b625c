"""What the service tests run on: a clock the test moves, one secrets key."""

from __future__ import annotations

import datetime as dt

from lre.server.adapters.at_rest import SecretsKeys

KEY = SecretsKeys(bytes(range(32)))


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)
