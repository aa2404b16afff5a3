"""SPEC §12 against the shared chat test server (tests/chat_server.py) on 127.0.0.1, on the
manual clock, so polling is counted on the server without sleeping: P1 `polling_interval` (the
smallest interval among the subscribers wins, polling stops when none is left), P2
`refetch_on_mount_or_arg_change`, P3 `prefetch` and `reset_api_state`, and their bad input."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from conftest import Events, wait_until
from test_network import REDUX, ChatServer, server, server_process  # noqa: F401  (fixtures)

import livecache


def fetches(server: ChatServer) -> int:
    return int(server.stats()["httpRequests"])


def query_only(server: ChatServer, **extra: Any) -> Dict[str, Any]:
    """`getMessages` without its stream: every fetch the server counts is a poll or a refetch."""
    c = server.config(**extra)
    del c["endpoints"]["getMessages"]["stream"]
    return c


def test_p1_polling_counted_on_the_server_smallest_interval_wins_and_stops(server: ChatServer) -> None:
    with livecache.Client(query_only(server), clock="manual") as client:
        slow = client.subscribe("getMessages", "redux", polling_interval=1000)
        assert slow.loaded().result(10) == REDUX
        base = fetches(server)
        fast = client.subscribe("getMessages", "redux", polling_interval=250)
        for i in range(1, 4):
            wait_until(lambda: slow.snapshot()["status"] == "fulfilled", "no fetch in flight")
            client.advance(250)
            wait_until(lambda: fetches(server) == base + i, f"poll {i} reached the server")
        assert client.stats()["polls"] == 3
        fast.unsubscribe()
        wait_until(lambda: slow.snapshot()["status"] == "fulfilled", "no fetch in flight")
        client.advance(500)
        assert fetches(server) == base + 3, "the 250 ms poller left: the next poll is 1000 ms after the last"
        client.advance(500)
        wait_until(lambda: fetches(server) == base + 4, "the slow poll")
        slow.unsubscribe()
        wait_until(lambda: client.snapshot("getMessages", "redux")["status"] == "fulfilled", "no fetch in flight")
        client.advance(5000)
        assert fetches(server) == base + 4, "polling stops when no poller is left"


def test_p1_bad_intervals_raise_and_subscribe_nothing(server: ChatServer) -> None:
    with livecache.Client(query_only(server), clock="manual") as client:
        for bad in (0, -1, float("nan"), "fast"):
            with pytest.raises((livecache.InvalidArgument, livecache.InvalidInput)):
                client.subscribe("getMessages", "redux", polling_interval=bad)  # type: ignore[arg-type,unused-ignore]
        assert client.stats()["entries"] == 0


def test_p2_refetch_on_mount_or_arg_change(server: ChatServer) -> None:
    with livecache.Client(query_only(server, refetchOnMountOrArgChange=30), clock="manual") as client:
        a = client.subscribe("getMessages", "redux")
        a.loaded().result(10)
        base = fetches(server)
        client.advance(29_000)
        client.subscribe("getMessages", "redux")
        assert fetches(server) == base, "29 s old: fresh enough for 30 s"
        client.advance(1_000)
        b = client.subscribe("getMessages", "redux")
        wait_until(lambda: fetches(server) == base + 1 and b.snapshot()["status"] == "fulfilled", "refetched at 30 s")
        client.subscribe("getMessages", "redux", refetch_on_mount_or_arg_change=True)
        wait_until(lambda: fetches(server) == base + 2, "True refetches whatever the age")
    with pytest.raises(livecache.ConfigError, match="refetchOnMountOrArgChange"):
        livecache.Client(query_only(server, refetchOnMountOrArgChange="often"))


def test_p3_prefetch_and_reset_api_state(server: ChatServer) -> None:
    ev = Events()
    removed: List[Any] = []

    async def added(arg: Any, lifecycle: Any) -> None:
        await lifecycle.cache_entry_removed
        removed.append(arg)

    hooks = {"getMessages": {"on_cache_entry_added": added}}
    with livecache.Client(server.config(keepUnusedDataFor=60), hooks, clock="manual") as client:
        client.prefetch("getMessages", "general")
        wait_until(lambda: client.snapshot("getMessages", "general")["status"] == "fulfilled", "prefetched")
        base = fetches(server)
        client.prefetch("getMessages", "general")
        client.prefetch("getMessages", "general", if_older_than=10)
        assert fetches(server) == base, "fresh data is not fetched again"
        client.prefetch("getMessages", "general", force=True)
        wait_until(lambda: fetches(server) == base + 1, "force refetches")
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        opened = server.stats()["connectionsOpened"]
        client.reset_api_state()
        ev.wait_for("removed")
        assert client.stats()["entries"] == 0
        wait_until(lambda: server.stats()["clientInitiatedCloses"] >= opened, "every stream closed with a handshake")
        wait_until(lambda: sorted(removed) == ["general", "redux"], "cache_entry_removed resolved")
        # The client goes on.
        again = client.subscribe("getMessages", "redux")
        assert again.loaded().result(10) == REDUX
        for bad in ({"if_older_than": 0}, {"if_older_than": -2}):
            with pytest.raises(livecache.InvalidArgument):
                client.prefetch("getMessages", "x", **bad)  # type: ignore[arg-type]
        with pytest.raises(livecache.UnknownEndpoint):
            client.prefetch("nope")
