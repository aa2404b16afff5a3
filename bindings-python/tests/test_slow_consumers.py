"""Slow consumers keep memory bounded (E4, E5): a flood into an ``events()`` reader that stalls, and
into a callback that blocks, leaves the process within a few megabytes of where it started, not
holding the flood. Measured as the process's resident memory (``/proc/self/statm``)."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any, Dict, List

import jsonpatch
from conftest import async_wait_until, wait_until

import livecache

MESSAGES = 20_000
BLOB = "x" * 4000
#: The flood carries MESSAGES * 4 KB = 80 MB of events; a subscriber queue bounded by queueLimit
#: (1,024 by default) holds at most 4 MB of them.
BOUND = 24 * 1024 * 1024


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def replay(events: List[Dict[str, Any]]) -> Any:
    data: Any = None
    for e in events:
        if e["type"] == "snapshot":
            data = e["data"]
        elif e["type"] == "patch":
            data = jsonpatch.apply_patch(data, e["patches"])
    return data


CONFIG: Dict[str, Any] = {"endpoints": {"doc": {"stream": {"apply": "replace"}}}}


def test_e4_a_stalled_events_reader_holds_a_bounded_queue_during_a_flood() -> None:
    async def main() -> None:
        with livecache.Client(CONFIG, {"doc": {"query_fn": lambda arg: {"i": -1}}}) as c:
            sub = c.subscribe("doc")
            stream = sub.events()
            await sub.loaded()
            before = rss()
            for i in range(MESSAGES):
                c.push_message("doc", livecache.NO_ARG, {"i": i, "blob": BLOB})
            await async_wait_until(lambda: c.stats()["messagesApplied"] >= MESSAGES, "the flood applied")
            grown = rss() - before
            print(f"stalled events() reader: grew {grown / 2**20:.1f} MiB over a {MESSAGES * len(BLOB) / 2**20:.0f} MiB flood")
            assert grown < BOUND, f"grew {grown / 2**20:.1f} MiB while the reader stalled"
            got: List[Dict[str, Any]] = []
            async for event in stream:
                got.append(event)
                if event.get("version") == MESSAGES + 1:
                    break
            assert len(got) <= 1025, "at most queueLimit events waited, the first a snapshot"
            assert replay(got) == sub.snapshot()["data"] == {"i": MESSAGES - 1, "blob": BLOB}

    asyncio.run(main())


def test_e4_a_blocked_callback_holds_a_bounded_queue_during_a_flood() -> None:
    release = threading.Event()
    got: List[Dict[str, Any]] = []

    def on_event(event: Dict[str, Any]) -> None:
        if not release.is_set():
            release.wait(60)  # the delivery thread is stuck here while the flood arrives
        got.append(event)

    with livecache.Client(CONFIG, {"doc": {"query_fn": lambda arg: {"i": -1}}}) as c:
        sub = c.subscribe("doc", on_event=on_event)
        sub.loaded().result(10)
        before = rss()
        for i in range(MESSAGES):
            c.push_message("doc", livecache.NO_ARG, {"i": i, "blob": BLOB})
        wait_until(lambda: c.stats()["messagesApplied"] >= MESSAGES, "the flood applied")
        grown = rss() - before
        release.set()
        print(f"blocked callback: grew {grown / 2**20:.1f} MiB over a {MESSAGES * len(BLOB) / 2**20:.0f} MiB flood")
        assert grown < BOUND, f"grew {grown / 2**20:.1f} MiB while the callback was blocked"
        wait_until(lambda: bool(got) and got[-1].get("version") == MESSAGES + 1, "the callback caught up")
        assert len(got) <= 1026, "the queue collapsed instead of holding the flood"
        assert replay(got) == sub.snapshot()["data"]


def test_e4_a_callback_on_a_busy_loop_holds_a_bounded_queue_during_a_flood() -> None:
    """A callback subscribed inside a running loop runs on that loop. While the loop is busy, the
    events of a flood wait in the core's queue, bounded by ``queueLimit`` and collapsing into a
    snapshot (E5), not one scheduled call per event in the loop's own queue."""
    big = "x" * 400_000
    n = 200  # 76 MiB in all, each message delivered before the next is pushed
    limit = 16
    got: List[Dict[str, Any]] = []

    async def main() -> None:
        config = dict(CONFIG, queueLimit=limit)
        with livecache.Client(config, {"doc": {"query_fn": lambda arg: {"i": -1}}}) as c:
            sub = c.subscribe("doc", on_event=got.append)
            await sub.loaded()
            await async_wait_until(lambda: bool(got) and got[-1].get("version") == 1, "the first snapshot")
            before = rss()

            def flood() -> None:
                for i in range(n):
                    delivered = c.stats()["eventsDelivered"]
                    c.push_message("doc", livecache.NO_ARG, {"i": i, "blob": big})
                    # The delivery thread has handed the event on before the next one comes, so
                    # nothing collapses on the way to the loop: only the loop's side can bound it.
                    wait_until(lambda: c.stats()["eventsDelivered"] > delivered, "the event delivered")

            # The loop blocks (without the GIL) until another thread's flood is delivered: no
            # callback can run meanwhile.
            pusher = threading.Thread(target=flood)
            pusher.start()
            pusher.join()
            grown = rss() - before
            print(f"callback on a busy loop: grew {grown / 2**20:.1f} MiB over a {n * len(big) / 2**20:.0f} MiB flood")
            assert grown < BOUND, f"grew {grown / 2**20:.1f} MiB while the loop was busy"
            assert len(got) == 2, "no callback ran while the loop was busy"
            await async_wait_until(lambda: got[-1].get("version") == n + 1, "the callback caught up")
            assert len(got) <= 2 + limit + 1, f"{len(got)} events: the queue collapsed instead of holding the flood"
            assert [e["type"] for e in got[:3]] == ["status", "snapshot", "snapshot"], "from the pending status on; the overflow a snapshot"
            assert replay(got) == sub.snapshot()["data"] == {"i": n - 1, "blob": big}

    asyncio.run(main())
