"""The manual clock (``clock="manual"``, ``advance(ms)``): keepUnusedDataFor (L7) without sleeping,
and what a lifecycle sees of its entry once it is gone (SPEC §6)."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

import pytest

import livecache


def test_l7_removal_happens_exactly_when_the_manual_clock_reaches_the_deadline() -> None:
    cfg: Dict[str, Any] = {"endpoints": {"a": {"keepUnusedDataFor": 2}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: [1]}}, clock="manual") as c:
        sub = c.subscribe("a", 1)
        assert sub.loaded().result(30) == [1]
        sub.unsubscribe()
        c.advance(1999)
        assert c.snapshot("a", 1)["data"] == [1]
        c.advance(1)
        with pytest.raises(livecache.NotFound):
            c.snapshot("a", 1)
        assert c.stats()["entriesRemoved"] == 1


def test_advance_needs_the_manual_clock_and_a_known_clock_name() -> None:
    cfg: Dict[str, Any] = {"endpoints": {"a": {}}}
    hooks = {"a": {"query_fn": lambda arg: 1}}
    with livecache.Client(cfg, hooks) as c:
        with pytest.raises(livecache.InvalidArgument):
            c.advance(10)
    with pytest.raises(livecache.InvalidArgument):
        livecache.Client(cfg, hooks, clock="sundial")
    c = livecache.Client(cfg, hooks, clock="manual")
    c.close()
    with pytest.raises(livecache.Closed):
        c.advance(0)


def test_get_cache_entry_after_removal_is_uninitialized() -> None:
    seen: List[Any] = []
    done = threading.Event()

    async def added(arg: Any, lifecycle: livecache.Lifecycle) -> None:
        await lifecycle.cache_data_loaded
        await lifecycle.cache_entry_removed
        seen.append(lifecycle.get_cache_entry())
        with pytest.raises(livecache.CacheEntryRemoved):
            lifecycle.update_cached_data(lambda d: None)
        done.set()

    cfg: Dict[str, Any] = {"keepUnusedDataFor": 5, "endpoints": {"a": {}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: {"x": 1}, "on_cache_entry_added": added}}, clock="manual") as c:
        sub = c.subscribe("a", 1)
        sub.loaded().result(30)
        sub.unsubscribe()
        c.advance(5000)
        assert done.wait(30)
    assert seen == [{"key": "a(1)", "status": "uninitialized"}]
