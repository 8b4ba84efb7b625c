"""A worker's thread runs below the API's threads, and keeps repeating its step."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from lre.server.workers import NICENESS, repeat


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_a_worker_thread_runs_niced_and_the_callers_thread_does_not() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    stop = threading.Event()
    seen: list[int] = []

    def step() -> bool:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        stop.set()
        return False

    thread = threading.Thread(target=repeat, args=(stop, 0.01, step, "test"))
    thread.start()
    thread.join(timeout=10)
    assert seen == [min(before + NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
