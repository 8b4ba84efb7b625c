"""ContentKeys, over a stand-in for the signer's client (this layer only)."""

from __future__ import annotations

import threading
import uuid
from typing import cast

import pytest

from lre.server.adapters.signer import ContentKeys, SignerClient, letter_key_context
from lre.server.domain.errors import DependencyUnavailable


class FakeSigner:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.available = True

    def wrap_keys(self, keys: list[tuple[bytes, bytes]]) -> list[bytes]:
        if not self.available:
            raise DependencyUnavailable("the signer is unavailable")
        self.calls.append(len(keys))
        return [b"wrapped:" + context + b":" + key for key, context in keys]


def _pool(signer: FakeSigner, batch: int = 8) -> ContentKeys:
    return ContentKeys(cast(SignerClient, signer), batch=batch)


def test_each_key_is_fresh_and_wrapped_for_the_letter_it_names() -> None:
    signer = FakeSigner()
    keys = _pool(signer)
    taken = [keys.take() for _ in range(50)]
    assert len({k.letter_id for k in taken}) == 50
    assert len({k.key for k in taken}) == 50
    for k in taken:
        assert len(k.key) == 32
        assert k.wrapped == b"wrapped:" + letter_key_context(k.letter_id) + b":" + k.key
    assert letter_key_context(uuid.UUID(int=1)) == b"letters/00000000-0000-0000-0000-000000000001"


def test_keys_are_wrapped_a_batch_per_signer_call() -> None:
    signer = FakeSigner()
    keys = _pool(signer, batch=8)
    for _ in range(40):
        keys.take()
    # One call per batch: 40 keys of 8 per call, a few ahead of use.
    assert set(signer.calls) == {8}
    assert 5 <= len(signer.calls) <= 6


def test_concurrent_takers_never_share_a_key() -> None:
    signer = FakeSigner()
    keys = _pool(signer, batch=4)
    taken: list[uuid.UUID] = []
    lock = threading.Lock()

    def take_many() -> None:
        for _ in range(100):
            key = keys.take()
            with lock:
                taken.append(key.letter_id)

    threads = [threading.Thread(target=take_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == len(set(taken)) == 800


def test_a_signer_outage_fails_only_takers_left_without_a_key() -> None:
    signer = FakeSigner()
    keys = _pool(signer, batch=8)
    keys.take()  # stock: 7
    signer.available = False
    # The stock still serves; each refill attempt fails quietly meanwhile.
    for _ in range(7):
        keys.take()
    with pytest.raises(DependencyUnavailable):
        keys.take()
    signer.available = True
    assert keys.take().wrapped.startswith(b"wrapped:letters/")
