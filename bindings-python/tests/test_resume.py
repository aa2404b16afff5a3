"""Resume instead of refetch (SPEC T6) against real servers on 127.0.0.1: the `websockets` chat
server (tests/chat_server.py: `?after=` replay, 409 to a resume, messages the stream loses) and
the `aiohttp-sse` server (tests/sse_server.py: replay from Last-Event-ID). Every drop test ends
with the server's data, nothing lost, nothing doubled."""

from __future__ import annotations

from typing import Any, Dict, List

import livecache
from conftest import wait_until
from test_network import ChatServer, server, server_process  # noqa: F401  (fixtures)
from test_sse import SseServer, sse, sse_process  # noqa: F401  (fixtures)


def resuming(server: ChatServer, **resume: Any) -> Dict[str, Any]:
    config = server.config()
    config["endpoints"]["getMessages"]["stream"]["resume"] = {"cursor": "/id", "param": "after", **resume}
    return config


def stored(server: ChatServer, channel: str) -> List[int]:
    return [m["id"] for m in server.call("GET", f"/messages/{channel}")]


def ids(sub: livecache.Subscription) -> List[int]:
    return [m["id"] for m in sub.snapshot()["data"]]


def silent(server: ChatServer, channel: str, text: str) -> Any:
    return server.call("POST", "/post", {"channel": channel, "userName": "tester", "text": text, "silent": "1"})


def open_and_settled(sub: livecache.Subscription) -> bool:
    s = sub.snapshot()
    return bool(s["status"] == "fulfilled" and s["stream"]["state"] == "open")


def test_t6_a_drop_resumes_after_the_last_cursor_without_a_refetch(server: ChatServer) -> None:
    with livecache.Client(resuming(server)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        last = server.post("redux", "before the drop")["id"]
        wait_until(lambda: ids(sub)[-1] == last, "message before the drop")
        fetches = server.stats()["httpRequests"]
        # The client is kept away (401) while the server goes on producing.
        server.call("POST", "/require?header=X-Never&value=1")
        server.call("POST", "/drop")
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "reconnecting", "dropped")
        missed = [server.post("redux", f"missed {i}")["id"] for i in range(3)]
        server.post("general", "another channel")
        server.call("POST", "/require?header=X-Never&value=")
        wait_until(lambda: ids(sub)[-1] == missed[-1], "caught up")
        assert server.stats()["httpRequests"] == fetches, "resumed: no refetch"
        assert ids(sub) == stored(server, "redux"), "the server's data, nothing lost or doubled"
        assert f"after={last}" in server.stats()["paths"][-1]
        stats = client.stats()
        assert stats["resumes"] == 1 and stats["reconnects"] == 1
        server.post("redux", "live again")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "live again", "live after the resume")


def test_t6_resume_initial_reads_the_response_as_sent_before_transform_response(server: ChatServer) -> None:
    # The server says where its answer stands (`last`); transform_response keeps only the items.
    config = resuming(server, initial="/last")
    config["endpoints"]["getMessages"]["query"] = "messages/{arg}?envelope=1"
    hooks = {"getMessages": {"transform_response": lambda data, arg: data["items"]}}
    with livecache.Client(config, hooks) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        assert ids(sub) == stored(server, "redux"), "the data is the transformed answer"
        last = server.call("GET", "/messages/redux?envelope=1")["last"]
        fetches = server.stats()["httpRequests"]
        server.call("POST", "/require?header=X-Never&value=1")
        server.call("POST", "/drop")
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "reconnecting", "dropped")
        missed = [server.post("redux", f"missed {i}")["id"] for i in range(2)]
        server.call("POST", "/require?header=X-Never&value=")
        wait_until(lambda: bool(ids(sub)) and ids(sub)[-1] == missed[-1], "caught up")
        assert server.stats()["httpRequests"] == fetches, "resumed from the answer's own position: no refetch"
        assert f"after={last}" in server.stats()["paths"][-1]
        assert ids(sub) == stored(server, "redux"), "nothing lost or doubled"


def test_t6_a_server_that_cannot_resume_answers_409_and_the_client_refetches(server: ChatServer) -> None:
    with livecache.Client(resuming(server)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        server.post("redux", "sets the cursor")
        wait_until(lambda: len(ids(sub)) == 3, "cursor set")
        resyncs = client.stats()["resyncs"]
        server.call("POST", "/refuseResume?on=1")
        server.call("POST", "/require?header=X-Never&value=1")
        server.call("POST", "/drop")
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "reconnecting", "dropped")
        silent(server, "redux", "only a refetch finds this")
        server.call("POST", "/require?header=X-Never&value=")
        wait_until(lambda: len(ids(sub)) == 4 and open_and_settled(sub), "refetched")
        assert ids(sub) == stored(server, "redux")
        assert client.stats()["resyncs"] == resyncs + 1
        paths = server.stats()["paths"]
        assert "after=" in paths[-2] and "after=" not in paths[-1], "409, then a connect without the cursor"


def test_t6_a_must_refetch_message_refetches(server: ChatServer) -> None:
    with livecache.Client(resuming(server, mustRefetch={"type": "reset"})) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        resyncs = client.stats()["resyncs"]
        silent(server, "redux", "lost 1")
        silent(server, "redux", "lost 2")
        server.call("POST", "/raw?text=%7B%22type%22%3A%22reset%22%2C%22channel%22%3A%22redux%22%7D")
        wait_until(lambda: len(ids(sub)) == 4 and open_and_settled(sub), "refetched")
        assert ids(sub) == stored(server, "redux")
        assert client.stats()["resyncs"] == resyncs + 1
        assert all("type" not in m for m in sub.snapshot()["data"]), "the reset message is not data"


def test_t6_a_sequence_gap_resumes_from_the_last_good_cursor(server: ChatServer) -> None:
    # `general` holds id 3 and gets every new id here, so its ids run without holes.
    config = resuming(server)
    config["endpoints"]["getMessages"]["stream"]["sequence"] = "/id"
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "general", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        first = server.post("general", "sets the sequence")["id"]
        wait_until(lambda: ids(sub)[-1] == first, "first message")
        silent(server, "general", "the stream loses this one")
        after = server.post("general", "arrives after a hole")["id"]
        wait_until(lambda: ids(sub)[-1] == after, "caught up")
        assert ids(sub) == stored(server, "general"), "the lost message is in, in order"
        stats = client.stats()
        assert (stats["resumes"], stats["messagesDuplicate"]) == (1, 0)
        assert f"after={first}" in server.stats()["paths"][-1]


def test_t6_sse_resumes_with_the_cursor_as_last_event_id(sse: SseServer) -> None:
    config = sse.config(resume={"cursor": "/id"})
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: open_and_settled(sub), "open")
        last = sse.post("redux", "before the drop")["id"]
        wait_until(lambda: ids(sub)[-1] == last, "message before the drop")
        fetches = sse.seen()["fetches"]
        sse.call("POST", "/hold")
        sse.call("POST", "/drop")
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "reconnecting", "dropped")
        missed = [sse.post("redux", f"missed {i}")["id"] for i in range(3)]
        sse.call("POST", "/release")
        wait_until(lambda: ids(sub)[-1] == missed[-1], "caught up")
        assert sse.seen()["fetches"] == fetches, "resumed: no refetch"
        assert ids(sub) == [m["id"] for m in sse.messages("redux")]
        assert sse.seen()["requests"][-1]["last-event-id"] == str(last)
        assert client.stats()["resumes"] == 1
