"""Host hooks (SPEC §6), callbacks and their threads (SPEC §5, §7 Python), loaded() (L2)."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import random
import threading
from typing import Any, Dict, List, Optional

import jsonpatch
import pytest
import websockets
from conftest import Events, async_wait_until, poll_until, wait_until
from websockets.asyncio.server import ServerConnection, serve

import livecache
from livecache._draft import run_on_message


def replay(events: List[Dict[str, Any]]) -> Any:
    data: Any = None
    version = 0
    for e in events:
        if e["type"] == "snapshot":
            data, version = copy.deepcopy(e["data"]), e["version"]
        elif e["type"] == "patch":
            assert e["from"] == version, (e, version)
            data, version = jsonpatch.apply_patch(data, e["patches"]), e["version"]
    return data


# query_fn / transform_response ------------------------------------------------------------------


def test_sync_query_fn_errors_reject_the_entry() -> None:
    def plain_error(arg: Any) -> Any:
        raise ValueError("no data for " + str(arg))

    def query_error(arg: Any) -> Any:
        raise livecache.QueryError({"status": 500, "data": "down"})

    cfg: Dict[str, Any] = {"endpoints": {"a": {}, "b": {}}}
    with livecache.Client(cfg, {"a": {"query_fn": plain_error}, "b": {"query_fn": query_error}}) as c:
        a, b = c.subscribe("a", 1), c.subscribe("b", 1)
        wait_until(lambda: a.snapshot()["status"] == "rejected" and b.snapshot()["status"] == "rejected")
        assert a.snapshot()["error"] == {"status": "CUSTOM_ERROR", "error": "ValueError: no data for 1"}
        assert b.snapshot()["error"] == {"status": 500, "data": "down"}
        assert c.stats()["fetchErrors"] == 2


def test_async_query_fn_without_a_loop_runs_on_a_private_loop() -> None:
    threads: List[str] = []

    async def query(arg: Any) -> Any:
        await asyncio.sleep(0)
        threads.append(threading.current_thread().name)
        return {"arg": arg}

    with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": query}}) as c:
        sub = c.subscribe("a", "x")
        assert sub.loaded().result(10) == {"arg": "x"}
    assert threads == ["livecache-hooks"]


def test_async_query_fn_runs_on_the_clients_loop() -> None:
    async def main() -> None:
        me = threading.get_ident()
        seen: List[int] = []

        async def query(arg: Any) -> Any:
            seen.append(threading.get_ident())
            await asyncio.sleep(0.01)
            return [arg]

        async def failing(arg: Any) -> Any:
            await asyncio.sleep(0)
            raise livecache.QueryError({"status": "FETCH_ERROR", "error": "nope"})

        with livecache.Client({"endpoints": {"a": {}, "b": {}}}, {"a": {"query_fn": query}, "b": {"query_fn": failing}}) as c:
            sub = c.subscribe("a", 5)
            assert await sub.loaded() == [5]
            assert seen == [me]
            b = c.subscribe("b")
            while b.snapshot()["status"] != "rejected":
                await asyncio.sleep(0.005)
            assert b.snapshot()["error"] == {"status": "FETCH_ERROR", "error": "nope"}

    asyncio.run(main())


def test_transform_response() -> None:
    def boom(data: Any, arg: Any) -> Any:
        raise RuntimeError("bad shape")

    cfg: Dict[str, Any] = {"endpoints": {"a": {}, "b": {}}}
    hooks = {
        "a": {"query_fn": lambda arg: [3, 1, 2], "transform_response": lambda data, arg: {"arg": arg, "items": sorted(data)}},
        "b": {"query_fn": lambda arg: [1], "transform_response": boom},
    }
    with livecache.Client(cfg, hooks) as c:
        a = c.subscribe("a", "k")
        assert a.loaded().result(10) == {"arg": "k", "items": [1, 2, 3]}
        b = c.subscribe("b", "k")
        wait_until(lambda: b.snapshot()["status"] == "rejected")
        assert "transformResponse" in b.snapshot()["error"]["error"] and "bad shape" in b.snapshot()["error"]["error"]


# on_message: recording drafts ------------------------------------------------------------------


def entity_hooks() -> Dict[str, Any]:
    def on_message(draft: Any, message: Any, arg: Any) -> Any:
        if message.get("replace"):
            return message["replace"]
        if message.get("raise"):
            raise ValueError("hook says no")
        if "add" in message:
            e = message["add"]
            draft["ids"].append(e["id"])
            draft["entities"][str(e["id"])] = e
        elif "set" in message:
            entity = draft["entities"][str(message["set"])]
            entity[message["field"]] = message["value"]
        elif "del" in message:
            draft["ids"].remove(message["del"])
            del draft["entities"][str(message["del"])]
        return None

    return {"getEntities": {"query_fn": lambda arg: {"ids": [], "entities": {}}, "on_message": on_message}}


def test_on_message_draft_mutations_replace_and_raise() -> None:
    cfg: Dict[str, Any] = {"endpoints": {"getEntities": {"stream": {}}}}
    with livecache.Client(cfg, entity_hooks()) as c:
        ev = Events()
        sub = c.subscribe("getEntities", on_event=ev)
        sub.loaded().result(10)
        for i in range(5):
            c.push_message("getEntities", livecache.NO_ARG, {"add": {"id": i, "name": f"e{i}", "tags": []}})
        c.push_message("getEntities", livecache.NO_ARG, {"set": 3, "field": "name", "value": "three"})
        c.push_message("getEntities", livecache.NO_ARG, {"del": 1})
        c.push_message("getEntities", livecache.NO_ARG, {"raise": True})
        wait_until(lambda: c.stats()["messagesApplied"] == 7 and "error" in ev.types())
        data = sub.snapshot()["data"]
        assert data["ids"] == [0, 2, 3, 4]
        assert data["entities"]["3"]["name"] == "three" and "1" not in data["entities"]
        err = [e for e in ev.items if e["type"] == "error"][0]
        assert err["reason"] == "hook" and "hook says no" in err["message"]
        # Every patch is the recorded operation itself (no diff): one op per edit.
        patches = [e for e in ev.items if e["type"] == "patch"]
        assert all(len(p["patches"]) <= 2 * (p["version"] - p["from"]) for p in patches)
        c.push_message("getEntities", livecache.NO_ARG, {"replace": {"ids": [9], "entities": {"9": {"id": 9}}}})
        wait_until(lambda: sub.snapshot()["data"]["ids"] == [9])
        wait_until(lambda: replay(ev.items) == sub.snapshot()["data"])


def test_on_message_replica_follows_host_updates_and_refetch() -> None:
    counter = {"n": 0}

    def query(arg: Any) -> Any:
        counter["n"] += 1
        return [{"from": "fetch", "n": counter["n"]}]

    def on_message(draft: Any, message: Any, arg: Any) -> None:
        draft.append(message)

    cfg: Dict[str, Any] = {"endpoints": {"chat": {"stream": {}}}}
    with livecache.Client(cfg, {"chat": {"query_fn": query, "on_message": on_message}}) as c:
        ev = Events()
        sub = c.subscribe("chat", "r", on_event=ev)
        sub.loaded().result(10)
        expected: List[Any] = [{"from": "fetch", "n": 1}]
        for round_ in range(20):
            c.push_message("chat", "r", {"m": round_})
            expected.append({"m": round_})
            if round_ % 3 == 0:
                c.update_query_data("chat", "r", lambda d: d.append({"host": "h"}))
                n_expected = len(expected) + 1
                wait_until(lambda: len(sub.snapshot()["data"]) == n_expected)
                expected = sub.snapshot()["data"]
            if round_ % 7 == 6:
                c.patch_query_data("chat", "r", [{"op": "replace", "path": "/0/n", "value": -round_}])
                expected = copy.deepcopy(expected)
                wait_until(lambda: c.stats()["messagesApplied"] == round_ + 1)
                expected = sub.snapshot()["data"]
        wait_until(lambda: c.stats()["messagesApplied"] == 20)
        assert [m for m in sub.snapshot()["data"] if "m" in m] == [{"m": i} for i in range(20)]
        c.refetch("chat", "r")
        wait_until(lambda: sub.snapshot()["data"][0]["n"] == 2)
        c.push_message("chat", "r", {"after": "refetch"})
        wait_until(lambda: sub.snapshot()["data"] == [{"from": "fetch", "n": 2}, {"after": "refetch"}])
        wait_until(lambda: replay(ev.items) == sub.snapshot()["data"])


def test_recording_draft_ops_replay_exactly() -> None:
    """Random edits through a draft: the recorded ops, applied by jsonpatch to the old value, give
    exactly the mutated replica."""
    rng = random.Random(7)
    data: Any = {"list": [{"a": 1}, {"a": 2}], "map": {"x": {"y": [1, 2, 3]}}, "s~/k": 0}
    for step in range(300):
        before = copy.deepcopy(data)

        def edit(draft: Any, message: Any, arg: Any) -> None:
            choice = rng.randrange(12)
            lst, mp = draft["list"], draft["map"]
            if choice == 0:
                lst.append({"a": step})
            elif choice == 1 and len(lst):
                lst[rng.randrange(len(lst))]["a"] = step
            elif choice == 2 and len(lst):
                del lst[rng.randrange(len(lst))]
            elif choice == 3:
                lst.insert(rng.randrange(len(lst) + 1), {"ins": step})
            elif choice == 4:
                mp[f"k{step % 5}"] = [step]
            elif choice == 5 and "x" in mp:
                mp["x"]["y"].append(step)
            elif choice == 6 and len(lst) > 1:
                lst.pop(0)
            elif choice == 7:
                draft["s~/k"] = step
            elif choice == 8:
                item = lst[0] if len(lst) else None
                lst.insert(0, {"front": step})
                if item is not None:
                    item["moved"] = True  # a draft made before an insert still finds its element
            elif choice == 9:
                mp.setdefault("list2", []).extend([1, 2])
            elif choice == 10 and len(lst) > 2:
                lst[0:2] = [{"slice": step}]
            else:
                mp.pop(f"k{step % 5}", None)

        kind, ops = run_on_message(edit, data, None, None)
        assert kind == 0
        patch = [{"op": o, "path": p, **({"value": v} if o != "remove" else {})} for o, p, v in ops]
        assert jsonpatch.apply_patch(before, patch) == data, (step, patch)


def test_draft_behaves_like_dicts_and_lists() -> None:
    data = {"a": [1, 2, {"b": 3}], "c": {"d": 1}}

    def look(draft: Any, message: Any, arg: Any) -> Any:
        assert isinstance(draft, livecache.DraftDict)
        assert len(draft) == 2 and "a" in draft and sorted(draft) == ["a", "c"]
        assert draft.get("zz", 5) == 5 and draft["a"][2]["b"] == 3 and draft["a"][-1] == {"b": 3}
        assert isinstance(draft["a"], livecache.DraftList) and 2 in draft["a"] and draft["a"][0:2] == [1, 2]
        assert draft == data and draft["c"] == {"d": 1} and dict(draft.items())["c"] == {"d": 1}
        with pytest.raises(TypeError):
            draft[1] = 2  # type: ignore[index]
        with pytest.raises(IndexError):
            draft["a"][5]
        return draft["c"]

    assert run_on_message(look, data, None, None) == (1, {"d": 1})


# onCacheEntryAdded: the seed's chat pattern against a real WebSocket server ------------------------


def test_seed_chat_pattern_with_on_cache_entry_added() -> None:
    async def main() -> None:
        closes: List[Optional[int]] = []

        async def chat_server(ws: ServerConnection) -> None:
            for i in range(1, 6):
                await ws.send(json.dumps({"id": i, "channel": "redux" if i != 3 else "other", "text": f"m{i}"}))
            try:
                await ws.wait_closed()
            finally:
                closes.append(ws.close_code)

        async with serve(chat_server, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/"

            async def get_messages(channel: Any) -> Any:
                await asyncio.sleep(0.01)
                return [{"id": 0, "channel": channel, "text": "welcome"}]

            # The RTK Query "streaming updates" example, line for line.
            async def on_cache_entry_added(channel: Any, lifecycle: livecache.Lifecycle) -> None:
                async with websockets.connect(url) as ws:
                    try:
                        await lifecycle.cache_data_loaded
                        async def listen() -> None:
                            async for raw in ws:
                                data = json.loads(raw)
                                if data.get("channel") == channel:
                                    lifecycle.update_cached_data(lambda draft: draft.append(data))
                        listener = asyncio.create_task(listen())
                    except livecache.CacheEntryRemoved:
                        pass
                    await lifecycle.cache_entry_removed
                listener.cancel()

            config: Dict[str, Any] = {"keepUnusedDataFor": 0, "endpoints": {"getMessages": {}}}
            hooks = {"getMessages": {"query_fn": get_messages, "on_cache_entry_added": on_cache_entry_added}}
            with livecache.Client(config, hooks) as client:
                events: List[Dict[str, Any]] = []
                sub = client.subscribe("getMessages", "redux", on_event=events.append)
                assert (await sub.loaded())[0]["text"] == "welcome"
                await async_wait_until(lambda: len(sub.snapshot()["data"]) >= 5, "the server's messages")
                data = sub.snapshot()["data"]
                assert [m["id"] for m in data] == [0, 1, 2, 4, 5]
                # Events are delivered after snapshot() shows the change (SPEC §5): wait for them.
                await async_wait_until(lambda: replay(events) == data, f"the events to replay to {data}")
                sub.unsubscribe()
                await async_wait_until(lambda: bool(closes), "the hook's socket to close")
                assert closes == [1000]  # the hook closed its socket with a close handshake

    asyncio.run(main())


def test_lifecycle_get_cache_entry_and_key() -> None:
    seen: List[Any] = []

    async def added(arg: Any, lifecycle: livecache.Lifecycle) -> None:
        loaded = await lifecycle.cache_data_loaded
        seen.append((lifecycle.key, loaded, lifecycle.get_cache_entry()["data"]))
        r = lifecycle.update_cached_data(lambda d: d.update(touched=True))
        seen.append(r.patches)
        await lifecycle.cache_entry_removed
        seen.append("removed")
        with pytest.raises(livecache.LivecacheError):
            lifecycle.update_cached_data(lambda d: None)
        seen.append("done")

    cfg: Dict[str, Any] = {"keepUnusedDataFor": 0, "endpoints": {"a": {}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: {"x": 1}, "on_cache_entry_added": added}}) as c:
        sub = c.subscribe("a", 1)
        sub.loaded().result(10)
        wait_until(lambda: len(seen) == 2)
        assert seen[0] == ('a(1)', {"data": {"x": 1}, "meta": None}, {"x": 1})
        assert seen[1] == [{"op": "add", "path": "/touched", "value": True}]
        sub.unsubscribe()
        wait_until(lambda: len(seen) == 4)


def test_raising_lifecycle_hook_is_an_error_event() -> None:
    async def added(arg: Any, lifecycle: livecache.Lifecycle) -> None:
        await lifecycle.cache_data_loaded
        raise RuntimeError("lifecycle failed")

    with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: 1, "on_cache_entry_added": added}}) as c:
        ev = Events()
        c.subscribe("a", on_event=ev)
        ev.wait_for("error")
        err = [e for e in ev.items if e["type"] == "error"][0]
        assert err["reason"] == "hook" and "lifecycle failed" in err["message"]


# loaded() (L2) ------------------------------------------------------------------------------------


def test_loaded_rejects_with_cache_entry_removed_and_unobserved_is_silent() -> None:
    async def main() -> None:
        problems: List[Any] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: problems.append(ctx))
        never = asyncio.get_running_loop().create_future()
        hook_done = asyncio.Event()

        async def added(arg: Any, lifecycle: livecache.Lifecycle) -> None:
            await lifecycle.cache_entry_removed  # cache_data_loaded rejects unobserved
            hook_done.set()

        cfg: Dict[str, Any] = {"keepUnusedDataFor": 0, "endpoints": {"a": {}}}
        with livecache.Client(cfg, {"a": {"query_fn": lambda arg: never, "on_cache_entry_added": added}}) as c:
            sub = c.subscribe("a")
            p = sub.loaded()
            unobserved = sub.loaded()
            sub.unsubscribe()
            with pytest.raises(livecache.CacheEntryRemoved):
                await p
            with pytest.raises(livecache.CacheEntryRemoved):
                await sub.loaded()
            assert unobserved is not None
            # Both rejections nobody looks at have happened (unobserved's and the lifecycle's
            # cache_data_loaded, which settles before cache_entry_removed) before looking for reports.
            await async_wait_until(unobserved.done, "the unobserved loaded() to reject")
            await asyncio.wait_for(hook_done.wait(), 10)
        # The client is closed: no engine thread schedules anything on this loop any more.
        del unobserved, p
        gc.collect()
        for _ in range(10):  # run what is already queued on the loop, and what that queues
            await asyncio.sleep(0)
        assert problems == []

    asyncio.run(main())


def test_loaded_resolves_at_once_when_data_exists_and_from_threads() -> None:
    with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: [1]}}) as c:
        sub = c.subscribe("a")
        first = sub.loaded()
        assert first.result(10) == [1] and first.done()
        assert asyncio.run(_await(sub.loaded())) == [1]


async def _await(p: livecache.Pending) -> Any:
    return await p


# Callbacks: threads, re-entrancy, exceptions (SPEC §5) ---------------------------------------------


def test_callbacks_run_on_the_delivery_thread_outside_a_loop() -> None:
    with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: 1}}) as c:
        ev = Events()
        c.subscribe("a", on_event=ev)
        ev.wait_for("snapshot")
        assert threading.get_ident() not in ev.threads


def test_callbacks_and_events_run_on_the_subscribing_loop() -> None:
    async def main() -> None:
        me = threading.get_ident()
        with livecache.Client({"endpoints": {"a": {"stream": {"apply": "append"}}}}, {"a": {"query_fn": lambda arg: []}}) as c:
            ev = Events()
            sub = c.subscribe("a", on_event=ev)
            stream = sub.events()
            await sub.loaded()
            for i in range(3):
                c.push_message("a", livecache.NO_ARG, i)
            got: List[Dict[str, Any]] = []
            async for event in stream:
                got.append(event)
                if event.get("version") == 4 or (event["type"] == "patch" and event["version"] >= 4):
                    break
            # The reader's queue fills as the engine makes the events; the callback runs when
            # the loop gets to it.
            await async_wait_until(lambda: any(e.get("version", 0) >= 4 for e in ev.items), "the callback at version 4")
            assert set(ev.threads) == {me}
            assert replay(got) == [0, 1, 2]
            late = sub.events()  # starts with the entry's state, then ends with the subscription
            sub.unsubscribe()
            assert [(e["type"], e["version"], e["data"]) async for e in late] == [("snapshot", 4, [0, 1, 2])]

    asyncio.run(main())


def test_events_iterator_ends_on_close_with_removed() -> None:
    async def main() -> List[str]:
        c = livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: 1}})
        sub = c.subscribe("a")
        types: List[str] = []
        stream = sub.events()  # the entry's state now, then what follows
        got_snapshot = asyncio.Event()

        async def consume() -> None:
            async for e in stream:
                types.append(e["type"])
                if e["type"] == "snapshot":
                    got_snapshot.set()

        task = asyncio.create_task(consume())
        await sub.loaded()
        # loaded() may resolve before the snapshot event reaches the iterator (SPEC §5).
        await asyncio.wait_for(got_snapshot.wait(), 10)
        c.close()
        await asyncio.wait_for(task, 10)
        return types

    types = asyncio.run(main())
    assert "snapshot" in types


def test_raising_callback_goes_to_unraisablehook_and_others_still_get_events(unraisable: List[Any]) -> None:
    def bad(event: Dict[str, Any]) -> None:
        raise ValueError("callback failed")

    with livecache.Client({"endpoints": {"a": {"stream": {"apply": "append"}}}}, {"a": {"query_fn": lambda arg: []}}) as c:
        c.subscribe("a", on_event=bad)
        good = Events()
        sub = c.subscribe("a", on_event=good)
        sub.loaded().result(10)
        c.push_message("a", livecache.NO_ARG, 1)
        good.wait_for("patch")
        wait_until(lambda: len(unraisable) >= 3)
        assert isinstance(unraisable[0].exc_value, ValueError) and unraisable[0].object is bad


def test_raising_callback_on_a_loop_goes_to_unraisablehook(unraisable: List[Any]) -> None:
    async def main() -> None:
        def bad(event: Dict[str, Any]) -> None:
            raise KeyError("on the loop")

        with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: 1}}) as c:
            sub = c.subscribe("a", on_event=bad)
            await sub.loaded()
            while len(unraisable) < 2:
                await asyncio.sleep(0.01)

    asyncio.run(main())
    assert isinstance(unraisable[0].exc_value, KeyError)


def test_reentrant_callbacks_unsubscribe_update_and_subscribe() -> None:
    cfg: Dict[str, Any] = {"endpoints": {"a": {"stream": {"apply": "append"}}, "b": {}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: []}, "b": {"query_fn": lambda arg: "b"}}) as c:
        log: List[str] = []
        subs: Dict[str, livecache.Subscription] = {}
        ready = threading.Event()

        def once(event: Dict[str, Any]) -> None:
            ready.wait(30)
            log.append("once:" + event["type"])
            subs["once"].unsubscribe()  # a callback may unsubscribe itself

        def busy(event: Dict[str, Any]) -> None:
            ready.wait(30)
            if event["type"] == "snapshot" and "b" not in subs:
                subs["b"] = c.subscribe("b", on_event=lambda e: log.append("b:" + e["type"]))
                c.update_query_data("a", livecache.NO_ARG, lambda d: d.append("from-callback"))

        subs["once"] = c.subscribe("a", on_event=once)
        subs["busy"] = c.subscribe("a", on_event=busy)
        ready.set()
        wait_until(lambda: "b:snapshot" in log and subs["busy"].snapshot()["data"] == ["from-callback"])
        assert [x for x in log if x.startswith("once:")] == ["once:status"]
        assert not subs["once"].active


def test_many_threads_use_one_client() -> None:
    with livecache.Client({"endpoints": {"a": {"stream": {"apply": "append"}}}}, {"a": {"query_fn": lambda arg: []}}) as c:
        sub = c.subscribe("a")
        sub.loaded().result(10)

        def worker(n: int) -> None:
            for i in range(200):
                c.push_message("a", livecache.NO_ARG, n * 1000 + i)
                if i % 50 == 0:
                    c.snapshot("a")
                    c.stats()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: len(sub.snapshot()["data"]) == 800)


def test_on_message_refused_by_the_engine_keeps_replica_honest() -> None:
    """An edit the engine refuses (E3: too deep) changes nothing, and later messages still apply to the
    engine's data, even after a host update moves the version on."""

    def deep(n: int) -> Any:
        v: Any = 0
        for _ in range(n):
            v = [v]
        return v

    def on_message(draft: Any, message: Any, arg: Any) -> None:
        draft.append(deep(200) if message == "deep" else message)

    cfg: Dict[str, Any] = {"endpoints": {"a": {"stream": {}}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: [], "on_message": on_message}}) as c:
        ev = Events()
        sub = c.subscribe("a", on_event=ev)
        sub.loaded().result(10)
        c.push_message("a", livecache.NO_ARG, 1)
        c.push_message("a", livecache.NO_ARG, "deep")
        ev.wait_for("error")
        c.update_query_data("a", livecache.NO_ARG, lambda d: d.append("host"))
        c.push_message("a", livecache.NO_ARG, 2)
        wait_until(lambda: sub.snapshot()["data"] == [1, "host", 2])
        wait_until(lambda: replay(ev.items) == [1, "host", 2])


def test_async_on_message_is_refused_with_an_error_event() -> None:
    async def on_message(draft: Any, message: Any, arg: Any) -> None:
        draft.append(message)

    cfg: Dict[str, Any] = {"endpoints": {"a": {"stream": {}}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: [], "on_message": on_message}}) as c:
        ev = Events()
        sub = c.subscribe("a", on_event=ev)
        sub.loaded().result(10)
        c.push_message("a", livecache.NO_ARG, 1)
        ev.wait_for("error")
        err = [e for e in ev.items if e["type"] == "error"][0]
        assert err["reason"] == "hook" and "plain function" in err["message"]
        assert sub.snapshot()["data"] == []


def test_unsubscribe_from_another_thread_waits_for_a_callback_on_the_loop() -> None:
    async def main() -> List[str]:
        order: List[str] = []
        inside = threading.Event()

        def slow(event: Dict[str, Any]) -> None:
            if event["type"] == "snapshot":
                inside.set()
                # Blocks the loop thread (the callback is running) until the other thread's
                # unsubscribe() has started: it takes the subscription off the count, then waits.
                started = poll_until(lambda: c.stats()["subscriptions"] == 0, timeout=30)
                order.append("callback done" if started else "unsubscribe() never started")

        with livecache.Client({"endpoints": {"a": {}}}, {"a": {"query_fn": lambda arg: 1}}) as c:
            sub = c.subscribe("a", on_event=slow)

            def other_thread() -> None:
                inside.wait(10)
                sub.unsubscribe()
                order.append("unsubscribed")

            t = threading.Thread(target=other_thread)
            t.start()
            await async_wait_until(lambda: bool(order), "the callback or the unsubscribe to finish", timeout=40)
            await asyncio.get_running_loop().run_in_executor(None, t.join)
        return order

    assert asyncio.run(main()) == ["callback done", "unsubscribed"]


def test_on_message_retried_after_a_concurrent_host_update_uses_fresh_data() -> None:
    """The engine calls the hook again when the data moved while it ran: the retry must see the
    moved data, not the replica the first attempt edited."""
    state = {"updated": False}
    holder: Dict[str, livecache.Client] = {}

    def on_message(draft: Any, message: Any, arg: Any) -> None:
        if not state["updated"]:
            state["updated"] = True
            holder["c"].update_query_data("a", livecache.NO_ARG, lambda d: d.append("host"))
        draft.append(draft[0] if len(draft) else "first")

    cfg: Dict[str, Any] = {"endpoints": {"a": {"stream": {}}}}
    with livecache.Client(cfg, {"a": {"query_fn": lambda arg: [], "on_message": on_message}}) as c:
        holder["c"] = c
        ev = Events()
        sub = c.subscribe("a", on_event=ev)
        sub.loaded().result(10)
        c.push_message("a", livecache.NO_ARG, "m1")
        c.push_message("a", livecache.NO_ARG, "m2")
        wait_until(lambda: c.stats()["messagesApplied"] == 2)
        assert sub.snapshot()["data"] == ["host", "host", "host"]
        wait_until(lambda: replay(ev.items) == ["host", "host", "host"])


def test_events_of_a_slow_reader_collapse_into_a_snapshot() -> None:
    """E4/E5 for `events()`: a reader that falls more than 1024 events behind gets one snapshot
    instead of the steps it missed, and replaying what it reads still gives the engine's data."""

    async def main() -> None:
        cfg: Dict[str, Any] = {"endpoints": {"a": {"stream": {"apply": "append"}}}}
        with livecache.Client(cfg, {"a": {"query_fn": lambda arg: []}}) as c:
            sub = c.subscribe("a")
            stream = sub.events()
            await sub.loaded()
            wait_until(lambda: c.stats()["eventsDelivered"] >= 2, "the status and snapshot events")
            before = c.stats()["eventsDelivered"]
            for i in range(2000):
                c.push_message("a", livecache.NO_ARG, i)
                # Blocks the loop until this change went out as its own event (nothing left
                # queued for a burst to join, E2): the events pile up unread.
                wait_until(lambda: c.stats()["eventsDelivered"] >= before + i + 1, f"the event of message {i}", interval=0.0002)
            await async_wait_until(lambda: c.stats()["messagesApplied"] >= 2000, "2000 messages applied")
            delivered = c.stats()["eventsDelivered"]
            got: List[Dict[str, Any]] = []
            async for event in stream:
                got.append(event)
                if event.get("version") == 2001:
                    break
            assert len(got) <= 1025 < delivered
            assert replay(got) == list(range(2000)) == sub.snapshot()["data"]

    asyncio.run(main())
