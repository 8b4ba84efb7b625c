"""Journals what the signer shows: its health going down and up, its certificates."""

from __future__ import annotations

from lre.server.services.journal import SignerWatch


class SignerWatcher:
    name = "signer-watch"

    def __init__(self, watch: SignerWatch) -> None:
        self._watch = watch

    def step(self) -> bool:
        self._watch.look()
        return False  # once per interval
