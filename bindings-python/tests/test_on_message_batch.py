"""``on_message`` takes a burst in one Python call (the engine's batched hook, SPEC §6): outcomes
commit in order, a hook that raises fails its own message only, and the messages after it are
offered again; every event replays with ``jsonpatch`` onto the last snapshot."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List

import jsonpatch
import pytest

import livecache
from conftest import Events, wait_until


def replay(events: Events) -> Any:
    data: Any = None
    version = 0
    for e in list(events.items):
        if e["type"] == "snapshot":
            data, version = e["data"], e["version"]
        elif e["type"] == "patch":
            assert e["from"] == version, f"patch from {e['from']} on a replica at {version}"
            data = jsonpatch.apply_patch(data, e["patches"])
            version = e["version"]
    return data, version


def test_a_buffered_burst_is_two_python_calls_and_a_raise_fails_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[int] = []
    runner_class: Any = getattr(livecache, "_HookRunner")  # the package's internal hook runner
    real = runner_class.on_messages

    def counting(self: Any, fn: Any, data: Any, messages: List[Any], arg: Any) -> Any:
        calls.append(len(messages))
        return real(self, fn, data, messages, arg)

    monkeypatch.setattr(runner_class, "on_messages", counting)
    release = threading.Event()

    async def query(arg: Any) -> List[Any]:
        await asyncio.to_thread(release.wait, 30)
        return [{"i": "initial"}]

    def on_message(draft: List[Any], message: Dict[str, Any], arg: Any) -> None:
        if message["i"] == 150:
            raise RuntimeError("boom")
        draft.append(message)

    cfg: Dict[str, Any] = {"endpoints": {"log": {"stream": {}}}}
    with livecache.Client(cfg, {"log": {"query_fn": query, "on_message": on_message}}) as c:
        events = Events()
        sub = c.subscribe("log", None, on_event=events)
        for i in range(300):
            c.push_message("log", None, {"i": i})
        # L4: all 300 wait for the data, so the engine offers them as one burst.
        wait_until(lambda: c.stats()["messagesBuffered"] == 300, "300 buffered")
        release.set()
        wait_until(lambda: c.stats()["messagesApplied"] + c.stats()["messagesRejected"]["hook"] == 300, "all handled")
        snap = c.snapshot("log", None)
        want = [{"i": "initial"}] + [{"i": i} for i in range(300) if i != 150]
        assert snap["data"] == want
        assert snap["version"] == 300, "the first data, then one version per applied message"
        # The first call takes the engine's batch bound (256) and stops at the raise (message
        # 150); the engine offers the 149 after it in one more call.
        assert calls == [256, 149]
        wait_until(lambda: replay(events)[1] == snap["version"], "the replica caught up")
        assert replay(events) == (want, 300)
        errors = [e for e in events.items if e["type"] == "error"]
        assert [(e["reason"], e["message"]) for e in errors] == [("hook", "onMessage: RuntimeError: boom")]
        sub.unsubscribe()


def test_a_returned_value_ends_the_call_and_the_rest_continue_on_the_new_data() -> None:
    release = threading.Event()

    async def query(arg: Any) -> Dict[str, Any]:
        await asyncio.to_thread(release.wait, 30)
        return {"n": 0}

    def on_message(draft: Dict[str, Any], message: Any, arg: Any) -> Any:
        if message == "reset":
            return {"n": 100}
        draft["n"] += 1
        return None

    cfg: Dict[str, Any] = {"endpoints": {"count": {"stream": {}}}}
    with livecache.Client(cfg, {"count": {"query_fn": query, "on_message": on_message}}) as c:
        events = Events()
        c.subscribe("count", None, on_event=events)
        for m in [1, 1, "reset", 1, 1]:
            c.push_message("count", None, m)
        wait_until(lambda: c.stats()["messagesBuffered"] == 5, "5 buffered")
        release.set()
        wait_until(lambda: c.stats()["messagesApplied"] == 5, "all applied")
        assert c.snapshot("count", None)["data"] == {"n": 102}
        wait_until(lambda: replay(events)[1] == c.snapshot("count", None)["version"], "the replica caught up")
        assert replay(events)[0] == {"n": 102}


def test_an_edit_too_deep_to_convert_fails_its_own_message_in_a_burst() -> None:
    # E3 inside one call: the value the draft recorded for message 2 is nested deeper than 128
    # levels, so it cannot become engine data; messages 1 and 3 of the same burst still apply.
    release = threading.Event()

    async def query(arg: Any) -> List[Any]:
        await asyncio.to_thread(release.wait, 30)
        return []

    def deep(n: int) -> Any:
        v: Any = 0
        for _ in range(n):
            v = [v]
        return v

    def on_message(draft: List[Any], message: Any, arg: Any) -> None:
        draft.append(deep(200) if message == 2 else message)

    cfg: Dict[str, Any] = {"endpoints": {"log": {"stream": {}}}}
    with livecache.Client(cfg, {"log": {"query_fn": query, "on_message": on_message}}) as c:
        events = Events()
        c.subscribe("log", None, on_event=events)
        for m in [1, 2, 3]:
            c.push_message("log", None, m)
        wait_until(lambda: c.stats()["messagesBuffered"] == 3, "3 buffered")
        release.set()
        wait_until(lambda: c.stats()["messagesApplied"] + c.stats()["messagesRejected"]["hook"] == 3, "all handled")
        snap = c.snapshot("log", None)
        assert snap["data"] == [1, 3]
        errors = [e for e in events.items if e["type"] == "error"]
        assert len(errors) == 1 and "too_deep" in errors[0]["message"], errors
        wait_until(lambda: replay(events)[1] == snap["version"], "the replica caught up")
        assert replay(events) == ([1, 3], snap["version"])
