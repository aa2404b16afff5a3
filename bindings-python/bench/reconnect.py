"""Reconnect cost, resume (SPEC T6) against refetch (L8 resync), printed as a table.

The chat server (tests/chat_server.py, Python `websockets`) holds a channel with a long history.
A client follows it, the server drops the socket and keeps the client away while it posts the
messages the client will miss, then lets it back. Measured from the moment the client may
reconnect until its data holds the last missed message (and, for refetch, the refetch is in):

  bytes   payload bytes the server sent for the catch-up: HTTP response bodies (the refetch)
          plus WebSocket text frames (the replay and live messages); headers and framing aside
  time    wall time to caught-up, including the client's reconnect delay (initialDelayMs 20)

Run: python bench/reconnect.py [--history 100000] [--missed 100]   (after `pip install ./bindings-python`)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Tuple

import livecache

SERVER = Path(__file__).resolve().parents[2] / "tests" / "chat_server.py"


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.admin = int(self.proc.stdout.readline().split()[1])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    def stats(self) -> Dict[str, Any]:
        return self.call("GET", "/stats")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Watch:
    """The data's last message id, the status and the stream state, kept from the events (a
    `snapshot()` would convert the whole history on every look)."""

    def __init__(self) -> None:
        self.value = 0
        self.status = ""
        self.stream = ""
        self.cond = threading.Condition()

    def state(self) -> Tuple[str, str]:
        with self.cond:
            return self.status, self.stream

    def __call__(self, event: Dict[str, Any]) -> None:
        last = None
        with self.cond:
            if "status" in event:
                self.status = event["status"]
            if event["type"] == "stream":
                self.stream = event["state"]
            self.cond.notify_all()
        if event["type"] == "snapshot" and event["data"]:
            last = event["data"][-1]["id"]
        elif event["type"] == "patch":
            for op in event["patches"]:
                if op["op"] == "add" and isinstance(op.get("value"), dict) and "id" in op["value"]:
                    last = op["value"]["id"]
        if last is not None:
            with self.cond:
                self.value = max(self.value, last)
                self.cond.notify_all()

    def wait(self, target: int, timeout: float = 600) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.value >= target, timeout):
                raise TimeoutError(f"last id {self.value}, waiting for {target}")


def until(pred: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition")
        time.sleep(0.002)


def run(server: Server, resume: bool, history: int, missed: int) -> Tuple[int, float, Dict[str, Any]]:
    server.call("POST", "/reset")
    server.call("POST", f"/seed?channel=bench&count={history}")
    stream: Dict[str, Any] = {"url": f"ws://127.0.0.1:{server.port}/", "filter": {"channel": "{arg}"},
                              "apply": "append", "reconnect": {"initialDelayMs": 20, "maxDelayMs": 20}}
    if resume:
        stream["resume"] = {"cursor": "/id", "param": "after"}
    config = {"baseUrl": f"http://127.0.0.1:{server.port}/",
              "endpoints": {"getMessages": {"query": "messages/{arg}", "stream": stream}}}
    last = Watch()
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "bench", on_event=last)
        sub.loaded().result(600)
        until(lambda: last.state() == ("fulfilled", "open"))
        first = server.call("POST", "/post", {"channel": "bench", "userName": "u", "text": "live"})["id"]
        last.wait(first)
        server.call("POST", "/require?header=X-Away&value=1")
        server.call("POST", "/drop")
        until(lambda: last.state()[1] == "reconnecting")
        for i in range(missed):
            target = server.call("POST", "/post", {"channel": "bench", "userName": "u", "text": f"missed {i}"})["id"]
        before = server.stats()
        start = time.perf_counter()
        server.call("POST", "/require?header=X-Away&value=")
        last.wait(target)
        until(lambda: last.state() == ("fulfilled", "open"))
        elapsed = time.perf_counter() - start
        after = server.stats()
        stats = client.stats()
    sent = (after["httpBytes"] - before["httpBytes"]) + (after["frameBytes"] - before["frameBytes"])
    return sent, elapsed, stats


def main() -> None:
    parser = argparse.ArgumentParser(description="resume vs refetch after a drop")
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--missed", type=int, default=100)
    args = parser.parse_args()
    server = Server()
    try:
        rows: List[Tuple[str, int, float, Dict[str, Any]]] = []
        for name, resume in (("refetch (resync)", False), ("resume (?after=)", True)):
            sent, elapsed, stats = run(server, resume, args.history, args.missed)
            rows.append((name, sent, elapsed, stats))
    finally:
        server.close()
    print(f"history {args.history:,} messages, {args.missed} missed while away")
    print(f"| reconnect | bytes received | time to caught-up | fetches | resumes | resyncs |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for name, sent, elapsed, stats in rows:
        print(f"| {name} | {sent:,} | {elapsed * 1000:,.0f} ms | {stats['fetches']} | {stats['resumes']} | {stats['resyncs']} |")
    ratio = rows[1][1] / rows[0][1] if rows[0][1] else float("nan")
    print(f"resume / refetch bytes: {ratio:.4%} (target < 1%)")


if __name__ == "__main__":
    main()
