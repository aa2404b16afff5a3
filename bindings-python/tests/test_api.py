"""Every call of the Python API (SPEC §7 Python) and every error path."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from typing import Any, Callable, Dict, List

import jsonpatch
import pytest
from conftest import Events, poll_until, wait_until

import livecache

DOC = {"title": "t", "tags": ["a"], "n": 1}


def doc_client(**extra: Any) -> livecache.Client:
    config: Dict[str, Any] = {"endpoints": {"getDoc": {}, "getMessages": {"stream": {"apply": "append"}}}, **extra}
    hooks: Dict[str, Dict[str, Any]] = {"getDoc": {"query_fn": lambda arg: DOC}, "getMessages": {"query_fn": lambda arg: []}}
    return livecache.Client(config, hooks)


def loaded(sub: livecache.Subscription) -> Any:
    return sub.loaded().result(10)


# Client construction and config ------------------------------------------------------------------


def test_config_as_dict_and_as_json_text() -> None:
    config: Dict[str, Any] = {"endpoints": {"getDoc": {}}}
    hooks = {"getDoc": {"query_fn": lambda arg: DOC}}
    for c in (config, json.dumps(config)):
        with livecache.Client(c, hooks) as client:
            with client.subscribe("getDoc", 1) as sub:
                assert loaded(sub) == DOC


def test_bad_config_names_the_key_path() -> None:
    with pytest.raises(livecache.ConfigError) as info:
        livecache.Client({"endpoints": {"getX": {"query": "x/{arg.}", "bogus": 1}}})
    assert "endpoints.getX" in str(info.value)
    assert isinstance(info.value, livecache.LivecacheError)


def test_bad_config_json_text() -> None:
    with pytest.raises(livecache.LivecacheError):
        livecache.Client("{not json")


def test_config_that_is_not_json() -> None:
    with pytest.raises(livecache.ConfigError):
        livecache.Client({"endpoints": {"x": {}}, "baseUrl": {1, 2}})


@pytest.mark.parametrize(
    "hooks,path",
    [
        ({"getDoc": {"queryFn": lambda a: 1}}, "hooks.getDoc.queryFn"),
        ({"getDoc": {"query_fn": 42}}, "hooks.getDoc.query_fn"),
        ({"getDoc": "nope"}, "hooks.getDoc"),
        ({"other": {"query_fn": lambda a: 1}}, "hooks.other"),
        ([1, 2], "hooks"),
    ],
)
def test_bad_hooks_are_config_errors(hooks: Any, path: str) -> None:
    with pytest.raises(livecache.ConfigError) as info:
        livecache.Client({"endpoints": {"getDoc": {"query": "doc"}}}, hooks)
    assert f"at {path}" in str(info.value)


def test_every_error_kind_is_a_livecache_error() -> None:
    kinds = [
        livecache.ConfigError, livecache.Closed, livecache.UnknownEndpoint, livecache.NotFound, livecache.NotLoaded,
        livecache.PatchError, livecache.InvalidArgument, livecache.InvalidInput, livecache.CacheEntryRemoved,
        livecache.QueryError,
    ]
    for k in kinds:
        assert issubclass(k, livecache.LivecacheError)
    assert issubclass(livecache.LivecacheError, Exception)


# Keys and args ------------------------------------------------------------------------------------


def test_k1_keys_no_arg_null_and_sorted_objects() -> None:
    with doc_client() as c:
        assert c.cache_key("getDoc") == "getDoc(undefined)"
        assert c.cache_key("getDoc", livecache.NO_ARG) == "getDoc(undefined)"
        assert c.cache_key("getDoc", None) == "getDoc(null)"
        assert c.cache_key("getDoc", "redux") == 'getDoc("redux")'
        assert c.cache_key("getDoc", 1.0) == "getDoc(1)"
        assert c.cache_key("getDoc", {"page": 2, "id": 1}) == 'getDoc({"id":1,"page":2})'
        assert c.cache_key("getDoc", [True, None]) == "getDoc([true,null])"
        assert repr(livecache.NO_ARG) == "livecache.NO_ARG"
        with pytest.raises(livecache.UnknownEndpoint):
            c.cache_key("nope")


def test_no_arg_and_null_are_different_entries() -> None:
    seen: List[Any] = []
    config: Dict[str, Any] = {"endpoints": {"getDoc": {}}}
    def query(arg: Any) -> Any:
        seen.append(arg)
        return {"arg": arg}

    with livecache.Client(config, {"getDoc": {"query_fn": query}}) as c:
        a = c.subscribe("getDoc")
        b = c.subscribe("getDoc", None)
        assert a.key != b.key
        assert loaded(a) == {"arg": None} and loaded(b) == {"arg": None}
        assert c.stats()["entries"] == 2


@pytest.mark.parametrize(
    "value,message",
    [
        (float("nan"), "not_finite"),
        (float("inf"), "not_finite"),
        ({1: "x"}, "dict keys must be str"),
        (2**64, "64-bit"),
        (-(2**63) - 1, "64-bit"),
        ({"a"}, "not a JSON value"),
        (b"bytes", "not a JSON value"),
        ("\ud800", "surrogate"),
        ({"\udfff": 1}, "surrogate"),
    ],
)
def test_invalid_input_values(value: Any, message: str) -> None:
    with doc_client() as c:
        sub = c.subscribe("getMessages", "x")
        loaded(sub)
        with pytest.raises(livecache.InvalidInput) as info:
            c.push_message("getMessages", "x", value)
        assert message in str(info.value)
        with pytest.raises(livecache.InvalidInput):
            c.subscribe("getDoc", value)


def test_depth_limit_is_128_levels() -> None:
    def nest(n: int) -> Any:
        v: Any = 0
        for _ in range(n):
            v = [v]
        return v

    with doc_client() as c:
        sub = c.subscribe("getMessages", "x")
        loaded(sub)
        c.push_message("getMessages", "x", nest(127))  # 128 with the array it is appended to
        with pytest.raises(livecache.InvalidInput) as info:
            c.push_message("getMessages", "x", nest(129))
        assert "too_deep" in str(info.value)
        with pytest.raises(livecache.InvalidInput):
            c.upsert_query_data("getDoc", 1, nest(100_000))


def test_values_round_trip_with_their_types() -> None:
    value = {"b": True, "f": False, "i": 3, "neg": -(2**63), "big": 2**64 - 1, "x": 1.5, "s": "é\u2028", "n": None,
             "l": [1, [2.0]], "t": (1, 2)}
    with doc_client() as c:
        c.upsert_query_data("getDoc", 1, value)
        data = c.snapshot("getDoc", 1)["data"]
        assert data["b"] is True and data["f"] is False
        assert type(data["i"]) is int and type(data["x"]) is float
        assert data["big"] == 2**64 - 1 and data["neg"] == -(2**63)
        assert data["t"] == [1, 2] and data["s"] == "é\u2028" and data["n"] is None
        assert list(data) == list(value)


# Subscriptions ----------------------------------------------------------------------------------


def test_subscribe_snapshot_loaded_unsubscribe() -> None:
    with doc_client() as c:
        ev = Events()
        sub = c.subscribe("getDoc", 7, on_event=ev)
        assert sub.key == "getDoc(7)"
        assert loaded(sub) == DOC
        snap = sub.snapshot()
        assert snap["key"] == "getDoc(7)" and snap["status"] == "fulfilled" and snap["version"] == 1
        assert snap["data"] == DOC and snap["stream"] == {"state": "closed"}
        assert c.snapshot("getDoc", 7) == snap
        ev.wait_for("snapshot")
        assert sub.active
        sub.unsubscribe()
        sub.unsubscribe()
        assert not sub.active
        assert c.stats()["subscriptions"] == 0
        assert "inactive" in repr(sub)


def test_subscription_context_manager() -> None:
    with doc_client() as c:
        with c.subscribe("getDoc", 1) as sub:
            assert sub.active
        assert not sub.active


def test_subscribe_errors() -> None:
    with doc_client() as c:
        with pytest.raises(livecache.UnknownEndpoint):
            c.subscribe("nope")
    cfg: Dict[str, Any] = {"endpoints": {"getM": {"query": "m", "stream": {"filter": {"room": "{arg.room}"}, "apply": "append"}}}}
    with livecache.Client(cfg) as c:
        with pytest.raises(livecache.InvalidArgument):
            c.subscribe("getM", {"other": 1})


def test_snapshot_and_push_without_entry_are_not_found() -> None:
    with doc_client() as c:
        with pytest.raises(livecache.NotFound):
            c.snapshot("getDoc", 1)
        with pytest.raises(livecache.NotFound):
            c.push_message("getMessages", "x", {"id": 1})
        with pytest.raises(livecache.NotFound):
            c.push_message_text("getMessages", "x", "{}")
        with pytest.raises(livecache.NotFound):
            c.refetch("getDoc", 1)
        with pytest.raises(livecache.NotFound):
            c.patch_query_data("getDoc", 1, [])
        with pytest.raises(livecache.NotFound):
            c.update_query_data("getDoc", 1, lambda d: None)


def test_events_are_dicts_of_spec_5() -> None:
    with doc_client() as c:
        ev = Events()
        sub = c.subscribe("getMessages", "r", on_event=ev)
        loaded(sub)
        c.push_message("getMessages", "r", {"id": 1})
        c.push_message_text("getMessages", "r", "[not json")
        ev.wait_for("error")
        ev.wait_for("patch")
        by_type = {e["type"]: e for e in ev.items}
        assert by_type["status"] == {"type": "status", "key": 'getMessages("r")', "status": "pending"}
        assert by_type["snapshot"] == {"type": "snapshot", "key": 'getMessages("r")', "version": 1, "status": "fulfilled", "data": []}
        patch = by_type["patch"]
        assert patch["from"] == 1 and patch["version"] == 2
        assert patch["patches"] == [{"op": "add", "path": "/-", "value": {"id": 1}}] or patch["patches"] == [
            {"op": "add", "path": "/0", "value": {"id": 1}}
        ]
        assert by_type["error"]["reason"] == "invalid_json" and by_type["error"]["message"]
        sub.unsubscribe()


def test_push_message_text_goes_through_the_pipeline() -> None:
    with doc_client() as c:
        sub = c.subscribe("getMessages", "r")
        loaded(sub)
        c.push_message_text("getMessages", "r", '{"id": 1, "x": [1, 2]}')
        c.push_message_text("getMessages", "r", '{"id": NaN}')
        wait_until(lambda: c.stats()["messagesRejected"]["not_finite"] + c.stats()["messagesRejected"]["invalid_json"] == 1)
        wait_until(lambda: sub.snapshot()["data"] == [{"id": 1, "x": [1, 2]}])


def test_push_messages_is_a_burst_each_message_through_the_pipeline() -> None:
    config: Dict[str, Any] = {"endpoints": {"burst": {"stream": {"apply": {"append": {"dedupeBy": "id"}}}}}}
    with livecache.Client(config, {"burst": {"query_fn": lambda arg: []}}) as c:
        ev = Events()
        sub = c.subscribe("burst", "b", on_event=ev)
        loaded(sub)
        # {"text"} has no "id" (an apply error), the second {"id": 2} a duplicate (no change).
        c.push_messages("burst", "b", [{"id": 1}, {"id": 2}, {"text": "no id"}, {"id": 2}, {"id": 3}])
        ev.wait_for("error")
        ev.wait_version(sub.snapshot()["version"])
        assert [m["id"] for m in sub.snapshot()["data"]] == [1, 2, 3]
        assert [e["reason"] for e in ev.items if e["type"] == "error"] == ["apply"]
        data: Any = None
        for e in ev.items:  # the events replay to the data with another implementation (E1)
            if e["type"] == "snapshot":
                data = e["data"]
            elif e["type"] == "patch":
                data = jsonpatch.apply_patch(data, e["patches"])
        assert data == sub.snapshot()["data"]
        assert c.stats()["messagesReceived"] == 5


def test_a_burst_event_shares_the_strings_of_its_messages_field_names() -> None:
    """The messages of one patch event share one ``str`` per field name, as ``json.loads`` shares
    the keys of one document; values and order are those of the messages."""
    config: Dict[str, Any] = {"endpoints": {"burst": {"stream": {"apply": "append"}}}}
    with livecache.Client(config, {"burst": {"query_fn": lambda arg: []}}) as c:
        ev = Events()
        sub = c.subscribe("burst", "b", on_event=ev)
        loaded(sub)
        messages = [{"id": i, "channel": "c", "text": f"m{i}", "nested": {"id": -i}} for i in range(40)]
        c.push_messages("burst", "b", messages)
        ev.wait_version(sub.snapshot()["version"])
        (patch,) = [e for e in ev.items if e["type"] == "patch"]
        values = [op["value"] for op in patch["patches"]]
        assert values == messages
        first_keys = list(values[0])
        for v in values[1:]:
            assert all(a is b for a, b in zip(list(v), first_keys)), "one str per field name"
        assert next(iter(values[5]["nested"])) is first_keys[0], "nested objects share them too"
        assert [op["op"] for op in patch["patches"]] == ["add"] * 40
        assert all(op["path"] == "/-" for op in patch["patches"])


def test_push_messages_errors_queue_nothing() -> None:
    config: Dict[str, Any] = {"endpoints": {"burst": {"stream": {"apply": "append"}}}}
    with livecache.Client(config, {"burst": {"query_fn": lambda arg: []}}) as c:
        sub = c.subscribe("burst", "b")
        loaded(sub)
        not_lists: List[Any] = [{"id": 1}, "[1]", None, 5]
        for not_a_list in not_lists:
            with pytest.raises(livecache.InvalidArgument):
                c.push_messages("burst", "b", not_a_list)
        with pytest.raises(livecache.InvalidInput):
            c.push_messages("burst", "b", [{"id": 1}, {"id": float("nan")}])
        with pytest.raises(livecache.NotFound):
            c.push_messages("burst", "other", [{"id": 1}])
        with pytest.raises(livecache.UnknownEndpoint):
            c.push_messages("nope", "b", [{"id": 1}])
        c.push_messages("burst", "b", ())
        assert c.stats()["messagesReceived"] == 0
        assert sub.snapshot()["data"] == []
        c.push_messages("burst", "b", ({"id": 1},))
        wait_until(lambda: sub.snapshot()["data"] == [{"id": 1}])
    with pytest.raises(livecache.Closed):
        c.push_messages("burst", "b", [{"id": 2}])


# Host updates (L9) --------------------------------------------------------------------------------


def test_update_query_data_mutating_and_returning_with_undo() -> None:
    with doc_client() as c:
        ev = Events()
        sub = c.subscribe("getDoc", 1, on_event=ev)
        loaded(sub)

        def recipe(draft: Dict[str, Any]) -> None:
            draft["title"] = "T"
            draft["tags"].append("b")

        r = c.update_query_data("getDoc", 1, recipe)
        assert c.snapshot("getDoc", 1)["data"] == {"title": "T", "tags": ["a", "b"], "n": 1}
        assert jsonpatch.apply_patch(DOC, r.patches) == {"title": "T", "tags": ["a", "b"], "n": 1}
        assert jsonpatch.apply_patch(c.snapshot("getDoc", 1)["data"], r.inverse_patches) == DOC
        u = r.undo()
        assert c.snapshot("getDoc", 1)["data"] == DOC
        assert isinstance(u, livecache.HostUpdate) and "HostUpdate" in repr(u)
        r2 = c.update_query_data("getDoc", 1, lambda draft: {"whole": "new"})
        assert c.snapshot("getDoc", 1)["data"] == {"whole": "new"}
        r2.undo()
        assert c.snapshot("getDoc", 1)["data"] == DOC
        wait_until(lambda: sub.snapshot()["version"] == 5)


def test_raising_recipe_changes_nothing() -> None:
    with doc_client() as c:
        sub = c.subscribe("getDoc", 1)
        loaded(sub)

        def recipe(draft: Dict[str, Any]) -> None:
            draft["title"] = "changed"
            raise KeyError("from the recipe")

        with pytest.raises(KeyError, match="from the recipe"):
            c.update_query_data("getDoc", 1, recipe)
        assert c.snapshot("getDoc", 1) == {**sub.snapshot(), "version": 1, "data": DOC}
        with pytest.raises(livecache.InvalidInput):
            c.update_query_data("getDoc", 1, lambda d: {"x": float("nan")})
        assert c.snapshot("getDoc", 1)["data"] == DOC


def test_patch_query_data_and_errors() -> None:
    with doc_client() as c:
        sub = c.subscribe("getDoc", 1)
        loaded(sub)
        r = c.patch_query_data("getDoc", 1, [{"op": "replace", "path": "/n", "value": 2}])
        assert r.patches == [{"op": "replace", "path": "/n", "value": 2}]
        assert r.inverse_patches == [{"op": "replace", "path": "/n", "value": 1}]
        r.undo()
        assert c.snapshot("getDoc", 1)["data"] == DOC
        for bad in ([{"op": "remove", "path": "/missing"}], [{"op": "jump", "path": "/n"}], {"not": "a list"},
                    [{"op": "test", "path": "/n", "value": 5}]):
            with pytest.raises(livecache.PatchError):
                c.patch_query_data("getDoc", 1, bad)  # type: ignore[arg-type]
        assert c.snapshot("getDoc", 1)["data"] == DOC


def test_not_loaded_while_pending() -> None:
    never: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
    with livecache.Client({"endpoints": {"getDoc": {}}}, {"getDoc": {"query_fn": lambda arg: never}}) as c:
        sub = c.subscribe("getDoc", 1)
        assert sub.snapshot()["status"] == "pending"
        with pytest.raises(livecache.NotLoaded):
            c.update_query_data("getDoc", 1, lambda d: None)
        with pytest.raises(livecache.NotLoaded):
            c.patch_query_data("getDoc", 1, [{"op": "add", "path": "/x", "value": 1}])
        never.set_result({"late": True})
        assert loaded(sub) == {"late": True}


def test_upsert_creates_entry_and_refetch_refetches() -> None:
    calls: List[Any] = []

    def query(arg: Any) -> Any:
        calls.append(arg)
        return {"n": len(calls)}

    with livecache.Client({"endpoints": {"getDoc": {}}}, {"getDoc": {"query_fn": query}}) as c:
        c.upsert_query_data("getDoc", "u", {"up": 1})
        assert c.snapshot("getDoc", "u")["data"] == {"up": 1} and calls == []
        sub = c.subscribe("getDoc", "v")
        assert loaded(sub) == {"n": 1}
        c.refetch("getDoc", "v")
        wait_until(lambda: sub.snapshot()["data"] == {"n": 2})
        assert calls == ["v", "v"]
        with pytest.raises(livecache.UnknownEndpoint):
            c.upsert_query_data("nope", 1, {})


def test_stats_counters() -> None:
    with doc_client() as c:
        s = c.stats()
        for k in ("entries", "subscriptions", "messagesApplied", "messagesRejected", "queueOverflows", "reconnects",
                  "hostUpdates", "fetches"):
            assert k in s
        assert s["entries"] == 0


# Closing ------------------------------------------------------------------------------------------


def test_every_call_on_a_closed_client_raises_closed() -> None:
    c = doc_client()
    sub = c.subscribe("getDoc", 1)
    loaded(sub)
    c.close()
    c.close()
    assert c.closed and not sub.active
    calls: List[Callable[[], Any]] = [
        lambda: c.subscribe("getDoc", 1),
        lambda: c.snapshot("getDoc", 1),
        lambda: c.update_query_data("getDoc", 1, lambda d: None),
        lambda: c.patch_query_data("getDoc", 1, []),
        lambda: c.upsert_query_data("getDoc", 1, {}),
        lambda: c.refetch("getDoc", 1),
        lambda: c.push_message("getDoc", 1, {}),
        lambda: c.push_message_text("getDoc", 1, "{}"),
        lambda: c.stats(),
        lambda: c.cache_key("getDoc", 1),
    ]
    for call in calls:
        with pytest.raises(livecache.Closed):
            call()
    with pytest.raises(livecache.Closed):
        sub.snapshot()


def test_client_context_manager_closes() -> None:
    with doc_client() as c:
        pass
    assert c.closed


def test_unsubscribe_from_another_thread_waits_for_running_callback() -> None:
    with doc_client() as c:
        inside = threading.Event()
        finished: List[bool] = []

        def slow(event: Dict[str, Any]) -> None:
            if event["type"] == "snapshot":
                inside.set()
                # Still running when the main thread's unsubscribe() starts: it takes the
                # subscription off the count, then waits for this callback to return.
                finished.append(poll_until(lambda: c.stats()["subscriptions"] == 0, timeout=30))

        sub = c.subscribe("getDoc", 1, on_event=slow)
        assert inside.wait(10)
        sub.unsubscribe()  # returns only once the callback has finished (SPEC §5)
        assert finished == [True]
