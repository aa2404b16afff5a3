"""Connections for real servers (SPEC §10, T1 and T2) against the shared chat test server
(tests/chat_server.py, Python `websockets`) on 127.0.0.1: headers on fetches and handshakes,
credentials kept out of everything observable, subscribe/unsubscribe frames, `send` and
`reconnect`."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from conftest import Events, wait_until
from test_network import REDUX, ChatServer, server, server_process  # noqa: F401  (fixtures)

import livecache

TOKEN = "Bearer s3cret-token-0123"


def seen(server: ChatServer) -> Dict[str, Any]:
    return server.call("GET", "/seen")  # type: ignore[no-any-return]


def subscribed_config(server: ChatServer, **stream: Any) -> Dict[str, Any]:
    config = server.config(headers={"Authorization": TOKEN, "X-App": "chat"})
    ep = config["endpoints"]["getMessages"]
    ep["headers"] = {"X-Channel": "{arg}"}
    ep["stream"].update({
        "headers": {"X-Stream": "1"},
        "subscribeMessage": {"type": "subscribe", "channel": "{arg}"},
        "unsubscribeMessage": {"type": "unsubscribe", "channel": "{arg}"},
        **stream,
    })
    return config


def test_t1_headers_reach_fetches_and_handshakes_and_never_show(server: ChatServer) -> None:
    server.call("POST", "/require?header=Authorization&value=" + TOKEN.replace(" ", "%20"))
    ev = Events()
    with livecache.Client(subscribed_config(server)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        assert sub.loaded().result(10) == REDUX
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        s = seen(server)
        request, handshake = s["requests"][-1], s["handshakes"][-1]
        assert (request["authorization"], request["x-app"], request["x-channel"]) == (TOKEN, "chat", "redux")
        assert "x-stream" not in request, "stream.headers are for handshakes only"
        assert (handshake["authorization"], handshake["x-stream"], handshake["x-channel"]) == (TOKEN, "1", "redux")
        server.post("redux", "with credentials")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "with credentials", "live message")
        observable = json.dumps([ev.items, sub.snapshot(), client.stats()])
    assert "s3cret" not in observable


def test_t1_a_refused_credential_is_an_error_that_does_not_quote_it(server: ChatServer) -> None:
    server.call("POST", "/require?header=Authorization&value=Bearer%20other")
    ev = Events()
    try:
        with livecache.Client(subscribed_config(server)) as client:
            sub = client.subscribe("getMessages", "redux", on_event=ev)
            wait_until(lambda: sub.snapshot()["status"] == "rejected", "fetch rejected")
            wait_until(lambda: "401" in (sub.snapshot()["stream"].get("error") or ""), "handshake refused")
            state = sub.snapshot()
            assert state["error"]["status"] == 401
            observable = json.dumps([ev.items, state, client.stats()])
    finally:
        server.call("POST", "/require?header=Authorization&value=")
    assert "s3cret" not in observable


def test_t1_headers_with_cr_lf_are_refused_before_any_request(server: ChatServer) -> None:
    with pytest.raises(livecache.ConfigError, match=r"headers\.X-Evil"):
        livecache.Client(server.config(headers={"X-Evil": "a\r\nX-Admin: 1"}))
    with pytest.raises(livecache.ConfigError, match=r"endpoints\.getMessages\.stream\.protocols"):
        config = server.config()
        config["endpoints"]["getMessages"]["stream"]["protocols"] = "chat"
        livecache.Client(config)
    with livecache.Client(subscribed_config(server)) as client:
        with pytest.raises(livecache.InvalidArgument, match="X-Channel") as raised:
            client.subscribe("getMessages", "redux\r\nX-Admin: 1")
        assert "X-Admin" not in str(raised.value)
    assert all("x-admin" not in h for h in seen(server)["requests"] + seen(server)["handshakes"])


def test_t2_subscribe_frame_selects_the_channel_and_is_sent_again_after_a_drop(server: ChatServer) -> None:
    config = subscribed_config(server)
    config["endpoints"]["getMessages"]["stream"].pop("filter")  # the server filters now
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: {"type": "subscribe", "channel": "redux"} in [json.loads(f) for f in seen(server)["frames"]], "subscribe frame")
        server.post("general", "not for this socket")
        server.post("redux", "for this socket")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "for this socket", "subscribed channel")
        assert [m["channel"] for m in sub.snapshot()["data"]] == ["redux"] * 3
        before = server.stats()["connectionsOpened"]
        server.call("POST", "/drop")
        wait_until(lambda: server.stats()["connectionsOpened"] > before and sub.snapshot()["stream"]["state"] == "open", "reconnected")
        subscribe = {"type": "subscribe", "channel": "redux"}
        wait_until(lambda: [json.loads(f) for f in seen(server)["frames"]].count(subscribe) == 2, "subscribed on the new socket")
        server.post("general", "still not for it")
        server.post("redux", "after the drop")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "after the drop", "subscribed again")
        assert all(m["channel"] == "redux" for m in sub.snapshot()["data"])
        sub.unsubscribe()
    frames = [json.loads(f) for f in seen(server)["frames"]]
    assert frames[-1] == {"type": "unsubscribe", "channel": "redux"}, "unsubscribe before the close"
    wait_until(lambda: server.stats()["connectionsOpen"] == 0, "closed")
    assert server.stats()["abortedConnections"] == 1, "only the socket the server dropped"


def test_t2_send_writes_a_frame_and_fails_without_a_connection(server: ChatServer) -> None:
    with livecache.Client(subscribed_config(server)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        assert client.send("getMessages", "redux", {"type": "typing", "user": "ana"}).result(10) is None
        wait_until(lambda: {"type": "typing", "user": "ana"} in [json.loads(f) for f in seen(server)["frames"]], "the frame")
        with pytest.raises(livecache.NotFound):
            client.send("getMessages", "nobody", {}).result(10)
        with pytest.raises(livecache.InvalidInput):
            client.send("getMessages", "redux", float("nan"))
    # Nothing listens on this port: the stream never opens, so nothing can be sent or queued.
    config = server.config()
    config["endpoints"]["getMessages"]["stream"]["url"] = "ws://127.0.0.1:9/"
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        with pytest.raises(livecache.NotConnected, match="not connected"):
            client.send("getMessages", "redux", {"type": "typing"}).result(10)
    config["endpoints"]["getMessages"].pop("stream")
    with livecache.Client(config) as client:
        client.subscribe("getMessages", "redux", on_event=lambda e: None)
        with pytest.raises(livecache.NotConnected):
            client.reconnect("getMessages", "redux")


def test_t1_reconnect_closes_with_a_handshake_and_connects_again_at_once(server: ChatServer) -> None:
    ev = Events()
    with livecache.Client(subscribed_config(server, reconnect={"initialDelayMs": 60000, "maxDelayMs": 60000})) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        sub.loaded().result(10)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        fetches = server.stats()["httpRequests"]
        client.reconnect("getMessages", "redux")
        # The backoff is a minute: only an immediate reconnect opens the stream again in time.
        wait_until(lambda: server.stats()["connectionsOpened"] == 2 and sub.snapshot()["stream"]["state"] == "open", "reopened")
        assert server.stats()["clientInitiatedCloses"] == 1 and server.stats()["abortedConnections"] == 0
        wait_until(lambda: server.stats()["httpRequests"] > fetches, "resynced after the reconnect (L8)")
        wait_until(lambda: [e["state"] for e in ev.items if e["type"] == "stream"][-2:] == ["reconnecting", "open"], "stream events")
        assert len(seen(server)["handshakes"]) == 2 and seen(server)["handshakes"][-1]["authorization"] == TOKEN
        with pytest.raises(livecache.NotFound):
            client.reconnect("getMessages", "nobody")


def shared_config(server: ChatServer) -> Dict[str, Any]:
    config = subscribed_config(server, share=True)
    config["endpoints"]["getMessages"]["stream"].pop("headers")  # stream headers with {arg} would split the share
    config["endpoints"]["getMessages"].pop("headers")
    config["keepUnusedDataFor"] = 0  # an unsubscribed entry goes at once (L7)
    return config


def test_t3_entries_with_the_same_url_and_headers_share_one_connection(server: ChatServer) -> None:
    config = shared_config(server)
    with livecache.Client(config) as client:
        redux = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        general = client.subscribe("getMessages", "general", on_event=lambda e: None)
        redux.loaded().result(10)
        general.loaded().result(10)
        subscribe = [{"type": "subscribe", "channel": c} for c in ("redux", "general")]
        wait_until(lambda: all(s in [json.loads(f) for f in seen(server)["frames"]] for s in subscribe), "both subscribed")
        assert server.stats()["connectionsOpened"] == 1, "one socket for both entries"
        assert (client.stats()["connections"], client.stats()["connectionsOpened"]) == (1, 1)
        server.post("redux", "to redux")
        server.post("general", "to general")
        wait_until(lambda: redux.snapshot()["data"][-1]["text"] == "to redux", "redux message")
        wait_until(lambda: general.snapshot()["data"][-1]["text"] == "to general", "general message")
        # Each entry's own filter picks its channel from the frames both receive.
        assert all(m["channel"] == "redux" for m in redux.snapshot()["data"])
        assert all(m["channel"] == "general" for m in general.snapshot()["data"])
        # A drop reconnects once, for both; each subscribes again and resyncs.
        server.call("POST", "/drop")
        wait_until(lambda: server.stats()["connectionsOpened"] == 2 and redux.snapshot()["stream"]["state"] == "open"
                   and general.snapshot()["stream"]["state"] == "open", "reconnected")
        wait_until(lambda: [json.loads(f) for f in seen(server)["frames"]].count(subscribe[0]) == 2
                   and [json.loads(f) for f in seen(server)["frames"]].count(subscribe[1]) == 2, "subscribed again")
        server.post("general", "after the drop")
        wait_until(lambda: general.snapshot()["data"][-1]["text"] == "after the drop", "live again")
        assert server.stats()["connectionsOpened"] == 2
        # The first to go sends its unsubscribe; the socket stays for the other.
        redux.unsubscribe()
        wait_until(lambda: json.loads(seen(server)["frames"][-1]) == {"type": "unsubscribe", "channel": "redux"}, "unsubscribe frame")
        assert server.stats()["connectionsOpen"] == 1
        server.post("general", "still shared")
        wait_until(lambda: general.snapshot()["data"][-1]["text"] == "still shared", "the other entry goes on")
    # The last one out closes the socket with a close handshake.
    wait_until(lambda: server.stats()["connectionsOpen"] == 0, "closed")
    assert server.stats()["clientInitiatedCloses"] == 1
    assert json.loads(seen(server)["frames"][-1]) == {"type": "unsubscribe", "channel": "general"}


def test_t3_different_headers_do_not_share(server: ChatServer) -> None:
    config = subscribed_config(server, share=True)  # stream headers carry {arg}: one socket each
    with livecache.Client(config) as client:
        a = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        b = client.subscribe("getMessages", "general", on_event=lambda e: None)
        wait_until(lambda: a.snapshot()["stream"]["state"] == "open" and b.snapshot()["stream"]["state"] == "open", "open")
        assert server.stats()["connectionsOpened"] == 2
        assert client.stats()["connections"] == 2
    with pytest.raises(livecache.ConfigError, match=r"stream\.share"):
        bad = server.config()
        bad["endpoints"]["getMessages"]["stream"]["share"] = "yes"
        livecache.Client(bad)


def test_t1_prepare_headers_runs_before_every_request_and_connect(server: ChatServer) -> None:
    calls: List[Dict[str, Any]] = []

    async def prepare_headers(headers: Dict[str, str], context: Dict[str, Any]) -> Dict[str, str]:
        calls.append(context)
        return {**headers, "Authorization": f"Bearer refreshed-{len(calls)}"}

    config = server.config(headers={"Authorization": "Bearer stale"})
    with livecache.Client(config, {"getMessages": {"prepare_headers": prepare_headers}}) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "open")
        s = seen(server)
        assert s["requests"][-1]["authorization"].startswith("Bearer refreshed-")
        first = s["handshakes"][-1]["authorization"]
        assert first.startswith("Bearer refreshed-")
        assert {c["kind"] for c in calls} >= {"query", "stream"}
        assert all(c["endpoint"] == "getMessages" and c["arg"] == "redux" for c in calls)
        # A reconnect asks again: a refreshed token is used.
        server.call("POST", "/drop")
        wait_until(lambda: len(seen(server)["handshakes"]) >= 2 and sub.snapshot()["stream"]["state"] == "open", "reconnected")
        assert seen(server)["handshakes"][-1]["authorization"] not in (first, "Bearer stale")
        observable = json.dumps([sub.snapshot(), client.stats()])
    assert "refreshed-" not in observable


def test_t1_a_raising_prepare_headers_fails_the_fetch_and_the_connect(server: ChatServer) -> None:
    def prepare_headers(headers: Dict[str, str], context: Dict[str, Any]) -> Dict[str, str]:
        raise PermissionError(f"no token for {context['kind']}")

    before = len(seen(server)["requests"])
    with livecache.Client(server.config(), {"getMessages": {"prepare_headers": prepare_headers}}) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        wait_until(lambda: sub.snapshot()["status"] == "rejected", "rejected")
        assert "no token for query" in sub.snapshot()["error"]["error"]
        wait_until(lambda: "no token for stream" in (sub.snapshot()["stream"].get("error") or ""), "connect failed")
        assert sub.snapshot()["stream"]["state"] == "reconnecting"
    assert len(seen(server)["requests"]) == before, "nothing was sent"
    with pytest.raises(livecache.ConfigError, match="prepare_headers"):
        livecache.Client(server.config(), {"getMessages": {"prepare_headers": "not callable"}})


def test_t1_t3_on_a_shared_socket_prepare_headers_runs_once_per_entry_and_connect(server: ChatServer) -> None:
    kinds: List[str] = []

    def prepare_headers(headers: Dict[str, str], context: Dict[str, Any]) -> Dict[str, str]:
        kinds.append(context["kind"])
        return {**headers, "Authorization": TOKEN}

    with livecache.Client(shared_config(server), {"getMessages": {"prepare_headers": prepare_headers}}) as client:
        a = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        b = client.subscribe("getMessages", "general", on_event=lambda e: None)
        wait_until(lambda: a.snapshot()["stream"]["state"] == "open" and b.snapshot()["stream"]["state"] == "open", "open")
        assert server.stats()["connectionsOpened"] == 1
        assert seen(server)["handshakes"][-1]["authorization"] == TOKEN, "the hook's headers on the shared handshake"
        assert kinds.count("stream") == 2, f"one call per entry for the connect: {kinds}"
