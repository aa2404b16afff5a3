"""The built-in HTTP and WebSocket transports against a real server: the shared chat test server
(tests/chat_server.py, Python `websockets`) on 127.0.0.1, started by these tests."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import jsonpatch
import pytest
from conftest import Events, wait_until

import livecache

SERVER = Path(__file__).resolve().parents[2] / "tests" / "chat_server.py"
REDUX = [
    {"id": 1, "channel": "redux", "userName": "markerikson", "text": "Welcome to #redux"},
    {"id": 2, "channel": "redux", "userName": "phryneas", "text": "RTK Query streams updates with onCacheEntryAdded"},
]


class ChatServer:
    def __init__(self, proc: "subprocess.Popen[str]", port: int, admin: int) -> None:
        self.proc, self.port, self.admin = proc, port, admin

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def post(self, channel: str, text: str, user: str = "tester") -> Any:
        return self.call("POST", "/post", {"channel": channel, "userName": user, "text": text})

    def stats(self) -> Dict[str, Any]:
        return self.call("GET", "/stats")  # type: ignore[no-any-return]

    def config(self, **extra: Any) -> Dict[str, Any]:
        return {
            "baseUrl": f"http://127.0.0.1:{self.port}/",
            **extra,
            "endpoints": {"getMessages": {
                "query": "messages/{arg}",
                "stream": {"url": f"ws://127.0.0.1:{self.port}/", "filter": {"channel": "{arg}"}, "apply": "append",
                           "reconnect": {"initialDelayMs": 20, "maxDelayMs": 200}},
            }},
        }


@pytest.fixture(scope="module")
def server_process() -> Iterator[ChatServer]:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    admin = int(proc.stdout.readline().split()[1])
    try:
        yield ChatServer(proc, port, admin)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def server(server_process: ChatServer) -> ChatServer:
    server_process.call("POST", "/reset")
    return server_process


def replay(events: List[Dict[str, Any]]) -> Tuple[int, Any]:
    data: Any = None
    version = 0
    for e in events:
        if e["type"] == "snapshot":
            data, version = copy.deepcopy(e["data"]), e["version"]
        elif e["type"] == "patch":
            assert e["from"] == version
            data, version = jsonpatch.apply_patch(data, e["patches"]), e["version"]
    return version, data


def test_fetch_then_stream_and_every_event_replays(server: ChatServer) -> None:
    with livecache.Client(server.config()) as client:
        ev = Events()
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        assert sub.loaded().result(10) == REDUX
        wait_until(lambda: client.snapshot("getMessages", "redux")["stream"]["state"] == "open", "stream open")
        for i in range(20):
            server.post("redux" if i % 4 else "general", f"m{i}")
        wait_until(lambda: len(sub.snapshot()["data"]) == 2 + 15, "15 redux messages")
        data = sub.snapshot()["data"]
        assert [m["text"] for m in data[2:]] == [f"m{i}" for i in range(20) if i % 4]
        wait_until(lambda: replay(ev.items) == (sub.snapshot()["version"], data), "replica equals snapshot")
        assert "stream" in ev.types()
        stats = client.stats()
        assert stats["messagesFiltered"] == 5 and stats["messagesApplied"] == 15
        assert server.stats()["httpRequests"] >= 1


def test_bad_frames_are_error_events(server: ChatServer) -> None:
    with livecache.Client(server.config()) as client:
        ev = Events()
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        sub.loaded().result(10)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        server.call("POST", "/raw", {"text": "{not json"})
        server.post("redux", "after")
        ev.wait_for("error")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "after", "message after the bad frame")
        assert [e["reason"] for e in ev.items if e["type"] == "error"] == ["invalid_json"]


def test_l7_keep_unused_data_for_closes_the_socket_with_a_handshake(server: ChatServer) -> None:
    with livecache.Client(server.config(keepUnusedDataFor=0.2)) as client:
        sub = client.subscribe("getMessages", "redux")
        sub.loaded().result(10)
        wait_until(lambda: server.stats()["connectionsOpen"] == 1, "socket open")
        sub.unsubscribe()
        wait_until(lambda: server.stats()["connectionsOpen"] == 0, "socket closed")
        stats = server.stats()
        assert stats["clientInitiatedCloses"] == 1 and stats["abortedConnections"] == 0
        with pytest.raises(livecache.NotFound):
            client.snapshot("getMessages", "redux")


def test_l8_dropped_stream_reconnects_and_resyncs(server: ChatServer) -> None:
    with livecache.Client(server.config()) as client:
        ev = Events()
        sub = client.subscribe("getMessages", "redux", on_event=ev)
        sub.loaded().result(10)
        wait_until(lambda: sub.snapshot()["stream"]["state"] == "open", "stream open")
        server.call("POST", "/drop")
        wait_until(lambda: client.stats()["reconnects"] >= 1 and sub.snapshot()["stream"]["state"] == "open", "reconnect")
        server.post("redux", "after reconnect")
        wait_until(lambda: sub.snapshot()["data"][-1]["text"] == "after reconnect", "message after reconnect")
        # snapshot() runs ahead of delivery (SPEC §5): once the replica has caught up with it, every
        # event before the last change (the `reconnecting` one too) has been delivered.
        wait_until(lambda: replay(ev.items) == (sub.snapshot()["version"], sub.snapshot()["data"]), "replica")
        states = [e["state"] for e in ev.items if e["type"] == "stream"]
        assert "reconnecting" in states


def test_close_closes_sockets_with_a_handshake(server: ChatServer) -> None:
    client = livecache.Client(server.config())
    subs = [client.subscribe("getMessages", ch) for ch in ("redux", "general")]
    for s in subs:
        s.loaded().result(10)
    wait_until(lambda: server.stats()["connectionsOpen"] == 2, "two sockets")
    client.close()
    wait_until(lambda: server.stats()["connectionsOpen"] == 0, "sockets closed")
    assert server.stats()["clientInitiatedCloses"] == 2


def test_exit_with_open_sockets_neither_hangs_nor_crashes(server: ChatServer) -> None:
    code = textwrap.dedent(
        f"""
        import livecache
        config = {json.dumps(server.config())}
        client = livecache.Client(config)
        sub = client.subscribe("getMessages", "redux", on_event=lambda e: None)
        print(len(sub.loaded().result(10)), flush=True)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    assert "panicked" not in r.stderr and "Traceback" not in r.stderr
    wait_until(lambda: server.stats()["connectionsOpen"] == 0, "socket closed at exit")
    assert server.stats()["abortedConnections"] == 0


def test_async_chat_example_against_the_server(server: ChatServer) -> None:
    """The README's example, run for a few messages."""
    import asyncio

    async def main() -> List[str]:
        texts: List[str] = []
        with livecache.Client(server.config()) as client:
            sub = client.subscribe("getMessages", "redux")
            for message in await sub.loaded():
                texts.append(message["text"])
            stream = sub.events()
            loop = asyncio.get_running_loop()
            while client.snapshot("getMessages", "redux")["stream"]["state"] != "open":
                await asyncio.sleep(0.01)
            await loop.run_in_executor(None, server.post, "redux", "live one")
            async for event in stream:
                for op in event.get("patches", []):
                    texts.append(op["value"]["text"])
                if len(texts) == 3:
                    break
        return texts

    assert asyncio.run(main()) == [REDUX[0]["text"], REDUX[1]["text"], "live one"]
