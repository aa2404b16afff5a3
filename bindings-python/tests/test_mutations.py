"""Writes (SPEC W1, W2, W4) against the shared chat test server (tests/chat_server.py, Python
`websockets`) on 127.0.0.1: a mutation is the admin port's `POST /post` (JSON body), which
stores the message and broadcasts it on the chat socket. The server counts message fetches, so
invalidation is checked where it lands; slow answers and late echoes are the server's own
`holdAnswer` / `holdEcho`, held until the test releases them. Every subscriber's events are
replayed with `jsonpatch`."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import jsonpatch
import pytest
from conftest import Events, wait_until
from test_network import REDUX, ChatServer, replay, server, server_process  # noqa: F401  (fixtures)

import livecache


def config(server: ChatServer, query: str = "") -> Dict[str, Any]:
    c = server.config(tagTypes=["Messages"])
    c["endpoints"]["getMessages"]["providesTags"] = [{"type": "Messages", "id": "{arg}"}]
    c["endpoints"]["getMessages"]["stream"]["apply"] = {"append": {"dedupeBy": "id"}}
    c["endpoints"]["sendMessage"] = {
        "mutation": {"url": f"http://127.0.0.1:{server.admin}/post{query}",
                     "body": {"channel": "{arg.channel}", "userName": "py", "text": "{arg.text}"}},
        "invalidatesTags": [{"type": "Messages", "id": "{arg.channel}"}],
    }
    c["endpoints"]["typing"] = {"mutation": {"send": {"endpoint": "getMessages", "arg": "{arg}", "message": {"typing": "{arg}"}}}}
    return c


def ready(sub: livecache.Subscription) -> None:
    """Loaded, stream open, no fetch in flight (the open's resync, if any, has landed)."""
    def settled() -> bool:
        # One snapshot: the open's resync sets the status to pending, so two reads could see
        # "fulfilled" from before the open and "open" from after it, with the resync in flight.
        snap = sub.snapshot()
        return bool(snap["status"] == "fulfilled" and snap["stream"]["state"] == "open")

    wait_until(settled, "loaded and open")


def texts(sub: livecache.Subscription) -> List[str]:
    return [m["text"] for m in sub.snapshot()["data"]]


@pytest.mark.parametrize("query", ["?holdAnswer=1", "?holdEcho=1"], ids=["slow-response", "late-echo"])
def test_w1_w4_mutate_returns_after_the_refetch_landed(server: ChatServer, query: str) -> None:
    ev = Events()
    with livecache.Client(config(server, query)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        ready(sub)
        fetches = server.stats()["httpRequests"]
        done = client.mutate("sendMessage", {"channel": "redux", "text": "from python"})
        if query == "?holdAnswer=1":
            # The echo lands while the response is held: the message shows before mutate returns.
            wait_until(lambda: "from python" in texts(sub), "the echo before the response")
            assert not done.done()
            server.call("POST", "/release")
        result = done.result(10)
        if query == "?holdEcho=1":
            assert server.stats()["framesSent"] == 0, "the echo is still held: only the refetch shows the message"
            server.call("POST", "/release")
        assert result["text"] == "from python" and result["channel"] == "redux"
        assert server.stats()["httpRequests"] == fetches + 1, "one refetch, counted on the server"
        # W4: whether the echo came first or not, the message is in the data now, once.
        assert texts(sub) == [m["text"] for m in REDUX] + ["from python"]
        wait_until(lambda: server.stats()["framesSent"] >= 1, "the echo went out")
        wait_until(lambda: replay(ev.items) == (sub.snapshot()["version"], sub.snapshot()["data"]), "replica equals snapshot")
        assert texts(sub).count("from python") == 1
        stats = client.stats()
        assert (stats["mutations"], stats["mutationErrors"], stats["invalidations"]) == (1, 0, 1)


def test_w1_await_mutate_from_asyncio(server: ChatServer) -> None:
    async def main() -> Any:
        with livecache.Client(config(server)) as client:
            sub = client.subscribe("getMessages", "general")
            await sub.loaded()
            return await client.mutate("sendMessage", {"channel": "general", "text": "awaited"})

    assert asyncio.run(main())["text"] == "awaited"


def test_w1_a_500_is_a_mutation_error_with_the_answer_and_still_invalidates(server: ChatServer) -> None:
    with livecache.Client(config(server, "?fail=500")) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        before, fetches = sub.snapshot()["data"], server.stats()["httpRequests"]
        with pytest.raises(livecache.MutationError) as info:
            client.mutate("sendMessage", {"channel": "redux", "text": "refused"}).result(10)
        e = info.value
        assert isinstance(e, livecache.LivecacheError)
        assert e.status == 500
        assert e.data == {"error": "the server refused the post"}
        assert e.error == {"status": 500, "data": {"error": "the server refused the post"}}
        assert server.stats()["httpRequests"] == fetches + 1, "RTK invalidates on failure too"
        assert sub.snapshot()["data"] == before
        assert client.stats()["mutationErrors"] == 1


def test_w1_bad_calls_raise_and_send_nothing(server: ChatServer) -> None:
    with livecache.Client(config(server)) as client:
        posts = server.stats()["posts"]
        with pytest.raises(livecache.WrongEndpointKind):
            client.mutate("getMessages", "redux").result(10)
        with pytest.raises(livecache.WrongEndpointKind, match="mutation"):
            client.subscribe("sendMessage")
        with pytest.raises(livecache.WrongEndpointKind):
            client.snapshot("sendMessage")
        with pytest.raises(livecache.InvalidArgument, match="text"):
            client.mutate("sendMessage", {"channel": "redux"}).result(10)
        with pytest.raises(livecache.UnknownEndpoint):
            client.mutate("nope", {}).result(10)
        with pytest.raises(livecache.InvalidInput):
            client.mutate("sendMessage", {"channel": "redux", "text": float("nan")}).result(10)
        with pytest.raises(livecache.NotFound):
            client.mutate("typing", "nobody").result(10)
        assert server.stats()["posts"] == posts, "nothing reached the server"
        for bad in (["Users"], [{"type": 1}], "Messages", [3]):
            with pytest.raises(livecache.InvalidArgument):
                client.invalidate_tags(bad)  # type: ignore[arg-type]
        assert client.stats()["invalidations"] == 0
    with pytest.raises(livecache.ConfigError, match="tagTypes"):
        livecache.Client({**config(server), "tagTypes": ["Other"]})


def test_w1_send_mutation_and_w2_invalidate_tags(server: ChatServer) -> None:
    ev = Events()
    with livecache.Client(config(server)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        unused = client.subscribe("getMessages", "general")
        ready(sub)
        ready(unused)
        unused.unsubscribe()
        assert client.mutate("typing", "redux").result(10) is None
        wait_until(lambda: '{"typing":"redux"}' in server.call("GET", "/seen")["frames"], "the typing frame (text as sent)")
        fetches = server.stats()["httpRequests"]
        snapshots = ev.types().count("snapshot")
        client.invalidate_tags(["Messages"])
        ev.wait_for("snapshot", snapshots + 1)
        assert server.stats()["httpRequests"] == fetches + 1, "only the subscribed entry refetches"
        with pytest.raises(livecache.NotFound):
            client.snapshot("getMessages", "general")


class States:
    """Every state a subscriber saw, rebuilt from its events with `jsonpatch`."""

    def __init__(self) -> None:
        self.items: List[Any] = []

    def __call__(self, e: Dict[str, Any]) -> None:
        if e["type"] == "snapshot":
            self.items.append(e["data"])
        elif e["type"] == "patch":
            self.items.append(jsonpatch.apply_patch(self.items[-1], e["patches"]))


def test_w3_an_optimistic_post_survives_other_messages_and_its_late_echo_confirms_it(server: ChatServer) -> None:
    on_event = States()
    states = on_event.items

    # The server holds the post until the test releases it: other users' messages come first.
    with livecache.Client(config(server, "?hold=1")) as client:
        sub = client.subscribe("getMessages", "redux", on_event=on_event)
        ready(sub)
        layer = {"endpoint": "getMessages", "arg": "redux", "message": {"id": "local", "text": "mine", "pending": True}}
        done = client.mutate("sendMessage", {"channel": "redux", "text": "mine"}, optimistic=[layer],
                             confirm={"userName": "py", "text": "{arg.text}"}, confirm_timeout_ms=5000)
        shown = sub.snapshot()
        assert shown["optimistic"] == 1 and shown["data"][-1] == {"id": "local", "text": "mine", "pending": True}
        # Another user's message while the echo is late: the layer stays on top.
        wait_until(lambda: server.stats()["held"] == 1, "the post reached the server")
        server.post("redux", "someone else")
        wait_until(lambda: "someone else" in texts(sub), "the other message")
        assert texts(sub)[-2:] == ["someone else", "mine"]
        server.call("POST", "/release")
        result = done.result(10)
        assert result["text"] == "mine"
        after = sub.snapshot()
        assert "optimistic" not in after, "W4: confirmed when mutate returns"
        assert texts(sub)[-2:] == ["someone else", "mine"] and after["data"][-1]["userName"] == "py"
        wait_until(lambda: bool(states) and states[-1] == sub.snapshot()["data"], "the replica caught up")
        first = next(i for i, s in enumerate(states) if any(m["text"] == "mine" for m in s))
        assert all(sum(m["text"] == "mine" for m in s) == 1 for s in states[first:]), "no flicker, never twice"


def test_w3_bad_options_raise_and_change_nothing(server: ChatServer) -> None:
    with livecache.Client(config(server)) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        before, posts = sub.snapshot(), server.stats()["posts"]
        arg = {"channel": "redux", "text": "x"}
        with pytest.raises(livecache.InvalidArgument, match="apply"):
            client.mutate("sendMessage", arg, optimistic=[{"endpoint": "getMessages", "arg": "redux", "message": 3}]).result(10)
        with pytest.raises(livecache.UnknownEndpoint):
            client.mutate("sendMessage", arg, optimistic=[{"endpoint": "nope", "message": {}}]).result(10)
        with pytest.raises(livecache.InvalidArgument):
            client.mutate("sendMessage", arg, confirm_timeout_ms=0).result(10)
        with pytest.raises(livecache.InvalidArgument, match="confirm"):
            client.mutate("sendMessage", arg, confirm={"id": "{reslt.id}"}).result(10)
        assert server.stats()["posts"] == posts
        assert sub.snapshot() == before


def test_w1_a_mutation_fn_hook_writes_and_its_query_error_is_the_mutation_error(server: ChatServer) -> None:
    calls: List[Any] = []

    async def note(arg: Any) -> Any:
        calls.append(arg)
        if not arg.get("ok"):
            raise livecache.QueryError({"status": 409, "data": {"why": "conflict"}})
        return {"noted": arg["text"]}

    c = config(server)
    c["endpoints"]["note"] = {"invalidatesTags": [{"type": "Messages", "id": "{arg.channel}"}]}
    with livecache.Client(c, {"note": {"mutation_fn": note}}) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        fetches = server.stats()["httpRequests"]
        assert client.mutate("note", {"channel": "redux", "text": "hi", "ok": True}).result(10) == {"noted": "hi"}
        assert server.stats()["httpRequests"] == fetches + 1, "invalidatesTags applied"
        with pytest.raises(livecache.MutationError) as info:
            client.mutate("note", {"channel": "redux", "ok": False}).result(10)
        assert info.value.status == 409 and info.value.data == {"why": "conflict"}
        assert len(calls) == 2
        with pytest.raises(livecache.WrongEndpointKind):
            client.subscribe("note")
    with pytest.raises(livecache.ConfigError, match="mutationFn"):
        livecache.Client(c, {"getMessages": {"mutation_fn": note}})


def untagged(server: ChatServer, query: str = "") -> Dict[str, Any]:
    """The config without its tag lists, for the tags hooks to stand in for them."""
    c = config(server, query)
    del c["endpoints"]["getMessages"]["providesTags"]
    del c["endpoints"]["sendMessage"]["invalidatesTags"]
    return c


def test_w2_tags_hooks_compute_what_is_provided_and_invalidated(server: ChatServer) -> None:
    provided: List[Any] = []
    invalidated: List[Any] = []

    def provides(data: Any, arg: Any) -> Any:
        provided.append((data, arg))
        return [{"type": "Messages", "id": arg}]

    def invalidates(result: Any, error: Any, arg: Any) -> Any:
        invalidated.append((result, error, arg))
        return [{"type": "Messages", "id": arg["channel"]}]

    hooks: Dict[str, Dict[str, Any]] = {"getMessages": {"provides_tags": provides}, "sendMessage": {"invalidates_tags": invalidates}}
    with livecache.Client(untagged(server), hooks) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        assert provided[-1] == (sub.snapshot()["data"], "redux"), "it got the fetched data and the arg"
        fetches = server.stats()["httpRequests"]
        arg = {"channel": "redux", "text": "tagged by a hook"}
        result = client.mutate("sendMessage", arg).result(10)
        assert server.stats()["httpRequests"] == fetches + 1, "the hook's tag matched the hook-provided one"
        assert invalidated[-1] == (result, None, arg)
        client.upsert_query_data("getMessages", "general", [])
        assert provided[-1] == ([], "general")
        client.invalidate_tags([{"type": "Messages", "id": "general"}])
        with pytest.raises(livecache.NotFound):
            client.snapshot("getMessages", "general")
    # On failure: no result, the error value; its tags still apply (RTK).
    with livecache.Client(untagged(server, "?fail=500"), hooks) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        fetches = server.stats()["httpRequests"]
        with pytest.raises(livecache.MutationError):
            client.mutate("sendMessage", {"channel": "redux", "text": "refused"}).result(10)
        result, error, _ = invalidated[-1]
        assert result is None and error["status"] == 500, invalidated[-1]
        assert server.stats()["httpRequests"] == fetches + 1


def test_w2_tags_hooks_that_raise_or_answer_unknown_types_are_clear_errors(server: ChatServer) -> None:
    def provides(data: Any, arg: Any) -> Any:
        if arg == "bad":
            return ["Messages", "Users"]
        if arg == "fails":
            raise ValueError("no tags today")
        return [{"type": "Messages", "id": arg}]

    def invalidates(result: Any, error: Any, arg: Any) -> Any:
        if arg["text"] == "bad":
            return [{"type": "Nope", "id": 1}]
        raise RuntimeError("cannot tell")

    hooks: Dict[str, Dict[str, Any]] = {"getMessages": {"provides_tags": provides}, "sendMessage": {"invalidates_tags": invalidates}}
    cases = [("bad", '"Users" is not in tagTypes'), ("fails", "providesTags failed: ValueError: no tags today")]
    with livecache.Client(untagged(server), hooks) as client:
        for arg, words in cases:
            ev = Events()
            sub = client.subscribe("getMessages", arg, on_event=ev)
            ev.wait_for("error")
            error = next(e for e in ev.items if e["type"] == "error")
            assert error["reason"] == "hook" and words in error["message"], error
            assert ev.types().index("snapshot") < ev.types().index("error"), "the data first, then the error"
            assert sub.snapshot()["data"] == [], "the data is kept"
            sub.unsubscribe()
        client.invalidate_tags(["Messages"])
        assert client.stats()["invalidations"] == 0, "those entries provide no tags"
        for arg, words in cases:
            with pytest.raises(livecache.PatchError, match=words.split(":")[0]):
                client.upsert_query_data("getMessages", arg, [{"text": "upserted"}])
            assert client.snapshot("getMessages", arg)["data"] == [], "not upserted"
        posts = server.stats()["posts"]
        for text, words in [("bad", '"Nope" is not in tagTypes'), ("other", "invalidatesTags failed: RuntimeError: cannot tell")]:
            with pytest.raises(livecache.MutationError) as info:
                client.mutate("sendMessage", {"channel": "redux", "text": text}).result(10)
            assert info.value.status == "CUSTOM_ERROR"
            assert words in info.value.error["error"], info.value.error
            assert info.value.data["text"] == text, "data is the write's own answer"
        assert server.stats()["posts"] == posts + 2, "the writes happened"
        assert client.stats()["invalidations"] == 0


def test_w2_a_tags_hook_beside_its_config_key_or_on_the_wrong_kind_is_a_config_error(server: ChatServer) -> None:
    def tags(*_: Any) -> Any:
        return []

    cases = [
        (config(server), {"getMessages": {"provides_tags": tags}}, r"hooks\.getMessages\.providesTags.*in its config too"),
        (config(server), {"sendMessage": {"invalidates_tags": tags}}, r"hooks\.sendMessage\.invalidatesTags.*in its config too"),
        (untagged(server), {"getMessages": {"invalidates_tags": tags}}, r"hooks\.getMessages\.invalidatesTags.*mutation endpoint"),
        (untagged(server), {"sendMessage": {"provides_tags": tags}}, r"hooks\.sendMessage.*providesTags"),
    ]
    for c, hooks, words in cases:
        with pytest.raises(livecache.ConfigError, match=words):
            livecache.Client(c, hooks)


def test_w3_a_recipe_layer_survives_other_messages_and_its_echo_confirms_it(server: ChatServer) -> None:
    on_event = States()
    states = on_event.items
    given: List[Any] = []

    def recipe(draft: Any) -> None:
        given.append(list(draft))
        draft.append({"id": "local", "text": "from a recipe", "pending": True})

    with livecache.Client(config(server, "?hold=1")) as client:
        sub = client.subscribe("getMessages", "redux", on_event=on_event)
        ready(sub)
        layer = {"endpoint": "getMessages", "arg": "redux", "recipe": recipe}
        done = client.mutate("sendMessage", {"channel": "redux", "text": "from a recipe"}, optimistic=[layer],
                             confirm={"userName": "py", "text": "{arg.text}"})
        assert given == [sub.snapshot()["data"][:-1]], "the recipe ran once, on the data shown"
        assert sub.snapshot()["optimistic"] == 1 and texts(sub)[-1] == "from a recipe"
        # Another user's message lands in the server data: the recipe's append stays on top.
        wait_until(lambda: server.stats()["held"] == 1, "the post reached the server")
        server.post("redux", "someone else")
        wait_until(lambda: "someone else" in texts(sub), "the other message")
        assert texts(sub)[-2:] == ["someone else", "from a recipe"]
        server.call("POST", "/release")
        assert done.result(10)["text"] == "from a recipe"
        assert "optimistic" not in sub.snapshot(), "W4: confirmed when mutate returns"
        assert texts(sub)[-2:] == ["someone else", "from a recipe"]
        assert len(given) == 1, "the recipe is not run again on a rebase"
        wait_until(lambda: bool(states) and states[-1] == sub.snapshot()["data"], "the replica caught up")
        first = next(i for i, s in enumerate(states) if any(m["text"] == "from a recipe" for m in s))
        assert all(sum(m["text"] == "from a recipe" for m in s) == 1 for s in states[first:]), "no flicker, never twice"


def test_w3_a_recipe_that_raises_is_its_own_error_and_nothing_is_sent(server: ChatServer) -> None:
    class Refused(Exception):
        pass

    def raises(draft: Any) -> None:
        draft.append({"id": "half", "text": "half done"})
        raise Refused("not this one")

    def fine(draft: Any) -> Any:
        return draft + [{"id": "ok", "text": "ok"}]

    with livecache.Client(config(server)) as client:
        sub = client.subscribe("getMessages", "redux")
        ready(sub)
        before, posts = sub.snapshot(), server.stats()["posts"]
        arg = {"channel": "redux", "text": "x"}
        layers = [{"endpoint": "getMessages", "arg": "redux", "recipe": fine}, {"endpoint": "getMessages", "arg": "redux", "recipe": raises}]
        with pytest.raises(Refused, match="not this one"):
            client.mutate("sendMessage", arg, optimistic=layers).result(10)
        with pytest.raises(livecache.InvalidArgument, match="callable"):
            client.mutate("sendMessage", arg, optimistic=[{"endpoint": "getMessages", "arg": "redux", "recipe": 3}]).result(10)
        with pytest.raises(livecache.InvalidArgument, match="no key"):
            client.mutate("sendMessage", arg, optimistic=[{"endpoint": "getMessages", "recipe": fine, "message": {}}]).result(10)
        with pytest.raises(livecache.WrongEndpointKind):
            client.mutate("sendMessage", arg, optimistic=[{"endpoint": "sendMessage", "recipe": fine}]).result(10)
        assert server.stats()["posts"] == posts, "nothing was sent"
        assert sub.snapshot() == before, "nothing changed"
