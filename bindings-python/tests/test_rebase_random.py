"""W3's rebase property from Python, on seeded random interleavings (no network): other users'
messages, optimistic posts whose `mutation_fn` the test answers when it chooses (success or
failure), and the server's echoes. After every step the subscriber's replica, rebuilt from the
events with `jsonpatch`, equals `snapshot()`; the snapshot equals the server's messages with the
pending posts on top, in order; a confirmed post never disappears."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any, Dict, List, Optional

import jsonpatch
import pytest
from conftest import wait_until

import livecache


class Writes:
    """`mutation_fn` whose calls wait until the test answers them (from any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: Dict[str, "asyncio.Future[Any]"] = {}
        self.loops: Dict[str, asyncio.AbstractEventLoop] = {}

    async def __call__(self, arg: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Any]" = loop.create_future()
        with self.lock:
            self.open[arg["clientId"]] = fut
            self.loops[arg["clientId"]] = loop
        return await fut

    def answer(self, client_id: str, ok: bool) -> None:
        with self.lock:
            fut, loop = self.open.pop(client_id), self.loops.pop(client_id)
        if ok:
            loop.call_soon_threadsafe(fut.set_result, {"stored": client_id})
        else:
            loop.call_soon_threadsafe(fut.set_exception, livecache.QueryError({"status": 500, "data": "refused"}))

    def arrived(self, client_id: str) -> bool:
        with self.lock:
            return client_id in self.open


CONFIG = {
    "endpoints": {
        "getMessages": {"stream": {"apply": {"append": {"dedupeBy": "id"}}}},
        "post": {
            "optimistic": [{"endpoint": "getMessages", "message": {"id": "{arg.clientId}", "clientId": "{arg.clientId}", "text": "{arg.text}"}}],
            "confirm": {"clientId": "{arg.clientId}"},
            "confirmTimeoutMs": 600000,
        },
    }
}


@pytest.mark.parametrize("seed", range(12))
def test_w3_random_interleavings_replay_and_match_the_model(seed: int) -> None:
    rng = random.Random(seed)
    writes = Writes()
    replica: Dict[str, Any] = {"data": None, "version": 0, "states": []}

    def on_event(e: Dict[str, Any]) -> None:
        if e["type"] == "snapshot":
            replica["data"], replica["version"] = e["data"], e["version"]
        elif e["type"] == "patch":
            assert e["from"] == replica["version"], "E1: patches are contiguous"
            replica["data"], replica["version"] = jsonpatch.apply_patch(replica["data"], e["patches"]), e["version"]
        else:
            return
        replica["states"].append(replica["data"])

    hooks: Dict[str, Dict[str, Any]] = {"getMessages": {"query_fn": lambda arg: []}, "post": {"mutation_fn": writes}}
    with livecache.Client(CONFIG, hooks) as client:
        sub = client.subscribe("getMessages", on_event=on_event)
        sub.loaded().result(10)
        server: List[Dict[str, Any]] = []  # what the stream delivered, in order
        pending: List[Dict[str, Any]] = []  # posts whose layer is on, in mutation order
        stored: List[Dict[str, Any]] = []  # answered successfully, echo not yet delivered
        results: Dict[str, livecache.Pending] = {}
        confirmed: List[str] = []
        next_id = 1
        for step in range(40):
            kind = rng.choice(["post", "other", "answer", "echo", "other"])
            confirms: Optional[str] = None
            if kind == "post":
                n = f"c{seed}-{step}"
                results[n] = client.mutate("post", {"clientId": n, "text": f"post {step}"})
                pending.append({"id": n, "clientId": n, "text": f"post {step}"})
                wait_until(lambda: writes.arrived(n), "the write reached the hook")
            elif kind == "answer" and any(writes.arrived(p["clientId"]) for p in pending):
                p = rng.choice([p for p in pending if writes.arrived(p["clientId"])])
                ok = rng.random() < 0.7
                writes.answer(p["clientId"], ok)
                if ok:
                    stored.append({"id": next_id, "clientId": p["clientId"], "text": p["text"]})
                    next_id += 1
                else:
                    pending.remove(p)
                    wait_until(lambda: results[p["clientId"]].done(), "the failed mutation settled")
            elif kind == "echo" and stored:
                m = stored.pop(0)
                client.push_message("getMessages", livecache.NO_ARG, m)
                server.append(m)
                pending = [p for p in pending if p["clientId"] != m["clientId"]]
                confirms = m["text"]
            else:
                m = {"id": next_id, "text": "other"}
                next_id += 1
                client.push_message("getMessages", livecache.NO_ARG, m)
                server.append(m)
            expected = server + pending
            before = len(replica["states"])
            wait_until(lambda: sub.snapshot()["data"] == expected, f"step {step} ({kind}): visible = server + pending layers")
            wait_until(lambda: replica["version"] == sub.snapshot()["version"], "the replica caught up")
            assert replica["data"] == expected
            assert sub.snapshot().get("optimistic", 0) == len(pending)
            if confirms is not None:
                confirmed.append(confirms)
                assert all(any(m["text"] == confirms for m in s) for s in replica["states"][before - 1 :]), "no flicker"
        # Writes still out are answered (refused) so no hook call is left waiting at close.
        refused = [p["clientId"] for p in pending if writes.arrived(p["clientId"])]
        for n in refused:
            writes.answer(n, False)
        wait_until(lambda: all(results[n].done() for n in refused), "every write answered")
        for text in confirmed:
            first = next(i for i, s in enumerate(replica["states"]) if any(m["text"] == text for m in s))
            assert all(any(m["text"] == text for m in s) for s in replica["states"][first:]), f"{text} disappeared"
