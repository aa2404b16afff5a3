"""A real WebSocket flood into Python, against the Rust e2e client on the same server in the same run.

The server is ``livecache-flood`` (chat-server crate, tokio-tungstenite): a connection to ``/N``
gets N chat messages as fast as the socket takes them. Per round, each client reads one flood of
N messages, timed from its connect (or subscribe) to the last one:

  Rust e2e          livecache-core, filter + append maxLen 1000, events to a Rust callback
                    (``cargo bench -p livecache-core --bench e2e`` with E2E_EXTERNAL), and its
                    ceiling, a bare tokio-tungstenite loop with serde_json; on mimalloc (the
                    allocator the Python extension links: like with like) and on glibc malloc;
  asyncio consumer  livecache, the same endpoint config, ``async for event in sub.events()``;
  callback          the same, events to a callback on the delivery thread;
  websockets        a bare ``websockets`` asyncio client that ``json.loads`` each message
                    (the Python ceiling).

Prints the medians over the rounds. Run: python bench/flood.py [--quick]
(after ``pip install ./bindings-python`` and ``pip install websockets``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Tuple

import websockets

import livecache

QUICK = "--quick" in sys.argv
N = 50_000 if QUICK else 200_000
ROUNDS = 1 if QUICK else 5
KEEP = 1000
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def start_server() -> Tuple["subprocess.Popen[str]", int]:
    """Builds livecache-flood when needed and starts it; returns the process and its port."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "livecache-chat-server", "--bin", "livecache-flood"], cwd=ROOT, check=True)
    child = subprocess.Popen([os.path.join(ROOT, "target", "release", "livecache-flood")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if not line.startswith("PORT "):
        raise RuntimeError(f"livecache-flood said {line!r}")
    return child, int(line.split()[1])


def rust(url: str, allocator: str) -> Dict[str, float]:
    """The Rust e2e client (and its bare ceiling) on the same server, on ``allocator``
    (``mimalloc`` or ``system``): msg/s of each."""
    env = dict(os.environ, E2E_EXTERNAL=url, LIVECACHE_BENCH_ALLOCATOR=allocator)
    r = subprocess.run(["cargo", "bench", "-q", "-p", "livecache-core", "--bench", "e2e"], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"the Rust e2e flood failed ({r.returncode}): {r.stderr}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {"livecache": float(out["livecache"]), "bare": float(out["bare"])}


def config(url: str) -> Dict[str, Any]:
    # No query: the first message (appended to null) is the initial data, version 1, as in e2e.
    return {"endpoints": {"getMessages": {"stream": {"url": url, "filter": {"channel": "{arg}"}, "apply": {"append": {"maxLen": KEEP}}}}}}


def livecache_callback(url: str, n: int) -> float:
    """Events to a callback, which runs on the delivery thread (no running loop)."""
    client = livecache.Client(config(url))
    done = threading.Event()
    end = [0.0]

    def on_event(event: Dict[str, Any]) -> None:
        if event.get("version", 0) >= n and not done.is_set():
            end[0] = time.perf_counter()
            done.set()

    start = time.perf_counter()
    sub = client.subscribe("getMessages", "bench", on_event)
    if not done.wait(120):
        raise RuntimeError("the callback flood stalled")
    sub.unsubscribe()
    client.close()
    return n / (end[0] - start)


async def livecache_asyncio(url: str, n: int) -> float:
    """Events read by ``async for`` on an asyncio loop."""
    client = livecache.Client(config(url))
    start = time.perf_counter()
    sub = client.subscribe("getMessages", "bench")
    async for event in sub.events():
        if event.get("version", 0) >= n:
            break
    end = time.perf_counter()
    sub.unsubscribe()
    client.close()
    return n / (end - start)


async def bare(url: str, n: int) -> float:
    """The Python ceiling: a bare websockets client, each message parsed."""
    start = time.perf_counter()
    async with websockets.connect(url, max_size=None) as ws:
        count = 0
        async for frame in ws:
            json.loads(frame)
            count += 1
            if count == n:
                break
        end = time.perf_counter()
    return n / (end - start)


def main() -> None:
    subprocess.run(["cargo", "bench", "-q", "-p", "livecache-core", "--bench", "e2e", "--no-run"], cwd=ROOT, check=True)
    child, port = start_server()
    url = f"ws://127.0.0.1:{port}/{N}"
    rows: Dict[str, List[float]] = {"rust": [], "rust_bare": [], "rust_glibc": [], "asyncio": [], "callback": [], "bare": []}
    try:
        for _ in range(ROUNDS):
            r = rust(url, "mimalloc")
            rows["rust"].append(r["livecache"])
            rows["rust_bare"].append(r["bare"])
            rows["rust_glibc"].append(rust(url, "system")["livecache"])
            rows["asyncio"].append(asyncio.run(livecache_asyncio(url, N)))
            rows["callback"].append(livecache_callback(url, N))
            rows["bare"].append(asyncio.run(bare(url, N)))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    med = {k: statistics.median(v) for k, v in rows.items()}
    ref = med["rust"]
    print(f"WebSocket flood into Python — Python {sys.version.split()[0]}, websockets {importlib.metadata.version('websockets')}, median of {ROUNDS}")
    print(f"\nflood: {N:,} chat messages per round, livecache-flood server, append maxLen {KEEP}")
    print("| client | msg/s | of Rust e2e |")
    print("|---|---:|---:|")
    for label, key in [
        ("Rust e2e: livecache-core → Rust callback (mimalloc)", "rust"),
        ("Rust e2e on glibc malloc", "rust_glibc"),
        ("Rust ceiling: tokio-tungstenite + serde_json", "rust_bare"),
        ("Python: livecache → asyncio consumer (async for)", "asyncio"),
        ("Python: livecache → callback (delivery thread)", "callback"),
        ("Python ceiling: websockets + json.loads", "bare"),
    ]:
        print(f"| {label} | {med[key]:,.0f} | {100 * med[key] / ref:.0f}% |")


if __name__ == "__main__":
    main()
