"""Ctrl-C never lands in the middle of saving a result: `deferred_interrupt` holds it until the save is done."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Inside the block, a SIGINT is remembered instead of raised; `KeyboardInterrupt` is raised on leaving.

    Used around "write the result to the store, then to run.json", so that an interrupted run's two copies
    always hold the same results. Off the main thread (where handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
