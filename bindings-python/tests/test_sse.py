"""Server-Sent Events streams (SPEC T4) against an `aiohttp-sse` server on 127.0.0.1
(tests/sse_server.py): messages into the cache, named events filtered, headers and
`Last-Event-ID` on the requests, drops that lose nothing, 204, 401, bad and oversized events."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import Events, wait_until

import livecache

SERVER = Path(__file__).resolve().parents[2] / "tests" / "sse_server.py"
TOKEN = "Bearer sse-s3cret-42"


class SseServer:
    def __init__(self, proc: "subprocess.Popen[str]", port: int) -> None:
        self.proc, self.port = proc, port

    def call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def post(self, channel: str, text: str) -> Any:
        return self.call("POST", f"/post?channel={channel}&text={text.replace(' ', '%20')}")

    def messages(self, channel: str) -> List[Dict[str, Any]]:
        return self.call("GET", f"/messages/{channel}")  # type: ignore[no-any-return]

    def seen(self) -> Dict[str, Any]:
        return self.call("GET", "/seen")  # type: ignore[no-any-return]

    def config(self, **stream: Any) -> Dict[str, Any]:
        return {
            "baseUrl": f"http://127.0.0.1:{self.port}/",
            "headers": {"Authorization": TOKEN},
            "endpoints": {"getMessages": {
                "query": "messages/{arg}",
                "stream": {"transport": "sse", "url": f"http://127.0.0.1:{self.port}/events/{{arg}}",
                           "apply": {"append": {"dedupeBy": "id"}},
                           "reconnect": {"initialDelayMs": 20, "maxDelayMs": 200}, **stream},
            }},
        }


@pytest.fixture(scope="module")
def sse_process() -> Iterator[SseServer]:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    try:
        yield SseServer(proc, port)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sse(sse_process: SseServer) -> SseServer:
    sse_process.call("POST", "/reset")
    return sse_process


def stream_state(sub: livecache.Subscription) -> str:
    return str(sub.snapshot()["stream"]["state"])


def test_t4_an_event_stream_keeps_the_entry_live(sse: SseServer) -> None:
    sse.call("POST", "/require?header=Authorization&value=" + TOKEN.replace(" ", "%20"))
    ev = Events()
    with livecache.Client(sse.config()) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        assert [m["id"] for m in sub.loaded().result(10)] == [1, 2]
        wait_until(lambda: stream_state(sub) == "open", "stream open")
        request = sse.seen()["requests"][-1]
        assert (request["authorization"], request["accept"]) == (TOKEN, "text/event-stream")
        sse.post("redux", "over SSE")
        sse.post("general", "another channel, another stream")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "over SSE", "live message")
        # A `typing` event is not in `stream.events`: counted as filtered, the data unchanged.
        filtered = client.stats()["messagesFiltered"]
        sse.call("POST", "/typing?channel=redux")
        sse.post("redux", "after typing")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "after typing", "message after the typing event")
        assert client.stats()["messagesFiltered"] == filtered + 1
        assert [m["id"] for m in sub.snapshot()["data"]] == [m["id"] for m in sse.messages("redux")]
        # The engine's data is ahead of the callback until the delivery thread has run it.
        ev.wait_version(sub.snapshot()["version"])
        patches = [e for e in ev.items if e["type"] == "patch"]
        assert [[op["op"] for op in p["patches"]] for p in patches] == [["add"], ["add"]], "patches proportional to the change"
        observable = json.dumps([ev.items, sub.snapshot(), client.stats()])
    assert "s3cret" not in observable


def test_t4_named_events_listed_in_events_are_messages(sse: SseServer) -> None:
    config = sse.config(events=["message", "typing"], apply="replace")
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: stream_state(sub) == "open", "stream open")
        sse.call("POST", "/typing?channel=redux")
        wait_until(lambda: sub.snapshot()["data"] == {"typing": True}, "the typing event replaced the data")


def test_t4_a_drop_reconnects_with_last_event_id_and_loses_nothing(sse: SseServer) -> None:
    ev = Events()
    with livecache.Client(sse.config()) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        sub.loaded().result(10)
        wait_until(lambda: stream_state(sub) == "open", "stream open")
        last = sse.post("redux", "before the drop")["id"]
        wait_until(lambda: sub.snapshot()["data"][-1]["id"] == last, "message before the drop")
        # The client is kept away while the server goes on producing.
        sse.call("POST", "/hold")
        sse.call("POST", "/drop")
        wait_until(lambda: stream_state(sub) == "reconnecting", "stream dropped")
        missed = [sse.post("redux", f"missed {i}")["id"] for i in range(3)]
        sse.call("POST", "/release")
        wait_until(lambda: sub.snapshot()["data"][-1]["id"] == missed[-1], "caught up")
        wait_until(lambda: sub.snapshot()["status"] == "fulfilled" and stream_state(sub) == "open", "settled")
        ids = [m["id"] for m in sub.snapshot()["data"]]
        assert ids == [m["id"] for m in sse.messages("redux")], "the server's data, nothing lost or doubled"
        resumed = [r for r in sse.seen()["requests"] if "last-event-id" in r]
        assert resumed and resumed[-1]["last-event-id"] == str(last)
        assert client.stats()["reconnects"] >= 1
        sse.post("redux", "after the drop")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "after the drop", "live again")


def test_t4_a_204_closes_the_stream_and_the_data_stays(sse: SseServer) -> None:
    sse.call("POST", "/answer?status=204")
    ev = Events()
    with livecache.Client(sse.config()) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        assert len(sub.loaded().result(10)) == 2
        wait_until(lambda: stream_state(sub) == "closed", "stream closed")
        assert "204" in sub.snapshot()["stream"]["error"]
        requests = len(sse.seen()["requests"])
        # The host may ask again; the server still says 204.
        client.reconnect("getMessages", "redux")
        wait_until(lambda: len(sse.seen()["requests"]) == requests + 1, "one more request")
        assert sub.snapshot()["status"] == "fulfilled" and len(sub.snapshot()["data"]) == 2


def test_t4_a_refused_request_is_retried_and_never_quotes_the_credential(sse: SseServer) -> None:
    sse.call("POST", "/require?header=Authorization&value=Bearer%20other")
    ev = Events()
    with livecache.Client(sse.config()) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        wait_until(lambda: "401" in (sub.snapshot()["stream"].get("error") or ""), "request refused")
        assert stream_state(sub) == "reconnecting"
        wait_until(lambda: len(sse.seen()["requests"]) >= 2, "retried")
        observable = json.dumps([ev.items, sub.snapshot(), client.stats()])
    assert "s3cret" not in observable


def test_e3_bad_and_oversized_events_are_errors_and_the_data_stays(sse: SseServer) -> None:
    ev = Events()
    with livecache.Client(sse.config(maxMessageBytes=512)) as client:
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        sub.loaded().result(10)
        wait_until(lambda: stream_state(sub) == "open", "stream open")
        before = sub.snapshot()["data"]
        sse.call("POST", "/raw?channel=redux&data=not%20json")
        ev.wait_for("error")
        # Other events (the first open's resync) may come after it: look at the error itself.
        assert [e["reason"] for e in ev.items if e["type"] == "error"] == ["invalid_json"]
        opened = len(sse.seen()["requests"])
        sse.call("POST", "/raw?channel=redux&data=" + "x" * 600)
        ev.wait_for("error", 2)
        assert [e["reason"] for e in ev.items if e["type"] == "error"] == ["invalid_json", "too_large"]
        assert sub.snapshot()["data"] == before
        # The stream starts over (and resyncs), then goes on.
        wait_until(lambda: len(sse.seen()["requests"]) > opened and stream_state(sub) == "open", "reopened")
        sse.post("redux", "still live")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "still live", "live after the errors")
        assert [m["id"] for m in sub.snapshot()["data"]] == [m["id"] for m in sse.messages("redux")]


def test_t4_sse_config_errors_and_send(sse: SseServer) -> None:
    config = sse.config(subscribeMessage={"type": "subscribe"})
    with pytest.raises(livecache.ConfigError, match=r"stream\.subscribeMessage.*only receives"):
        livecache.Client(config)
    config = sse.config(url="ws://127.0.0.1:9/")
    with pytest.raises(livecache.ConfigError, match=r"stream\.url.*http://"):
        livecache.Client(config)
    with pytest.raises(livecache.ConfigError, match=r"stream\.transport"):
        livecache.Client(sse.config(transport="eventsource"))
    with livecache.Client(sse.config()) as client:
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        sub.loaded().result(10)
        wait_until(lambda: stream_state(sub) == "open", "stream open")
        with pytest.raises(livecache.InvalidArgument, match="only receives"):
            client.send("getMessages", "redux", {"type": "typing"}).result(10)
