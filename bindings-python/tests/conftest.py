"""Shared helpers for the livecache Python tests."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

TIMEOUT = 10.0


def poll_until(pred: Callable[[], bool], timeout: float = TIMEOUT, interval: float = 0.005) -> bool:
    """Polls `pred` until it holds (True) or `timeout` passes (False). For callbacks, which must
    not raise: they record the outcome and the test asserts it."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(pred: Callable[[], bool], what: str = "condition", timeout: float = TIMEOUT, interval: float = 0.005) -> None:
    """Polls `pred` until it holds; fails after `timeout` (a hang guard, not a timed assertion)."""
    if not poll_until(pred, timeout, interval):
        raise AssertionError(f"timed out waiting for {what}")


async def async_wait_until(pred: Callable[[], bool], what: str = "condition", timeout: float = TIMEOUT) -> None:
    """`wait_until` inside a running event loop: yields to the loop between polls, so callbacks
    scheduled on it (the subscription's events, hook tasks) run meanwhile."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Events:
    """A thread-safe event log usable as an `on_event` callback."""

    def __init__(self) -> None:
        self.items: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        self.threads: List[int] = []

    def __call__(self, event: Dict[str, Any]) -> None:
        with self.lock:
            self.items.append(event)
            self.threads.append(threading.get_ident())

    def types(self) -> List[str]:
        with self.lock:
            return [e["type"] for e in self.items]

    def wait_for(self, type_: str, count: int = 1) -> None:
        wait_until(lambda: self.types().count(type_) >= count, f"{count} {type_} events (got {self.types()})")

    def wait_version(self, version: int) -> None:
        """Waits until an event of `version` (or later) reached the callback."""

        def reached() -> bool:
            with self.lock:
                return any(e.get("version", 0) >= version for e in self.items)

        wait_until(reached, f"an event of version {version} (got {self.types()})")


@pytest.fixture
def unraisable() -> Iterator[List[Any]]:
    """Records what reaches sys.unraisablehook."""
    seen: List[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda args: seen.append(args)
    try:
        yield seen
    finally:
        sys.unraisablehook = old
