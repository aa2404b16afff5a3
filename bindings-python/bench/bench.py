"""Throughput of keeping a live document in Python, printed as a table.

Workloads (the seed's chat and an entity table):
  chat      1,000 messages, then 20,000 appends pushed one by one (`push_message`), every change
            delivered to a Python callback.
  entities  N entities in `{ids, entities}`, then single-field updates of random entities.

Ways of doing it:
  livecache rule      a built-in `apply` rule (`append`, `upsert`): the engine emits the patch.
  livecache hook      an `on_message` hook mutating a recording draft.
  python make_patch   pure Python: keep the dict, make the changed copy (sharing unchanged parts),
                      `jsonpatch.make_patch(old, new)`.
  python apply_patch  pure Python with hand-built ops applied by `jsonpatch.apply_patch` (the floor a
                      Python user could write by hand, knowing the change in advance).

Rates are messages per second, from the first push (after the subscriber got its first snapshot)
until the callback has seen the last version.
The diff path gets slower as the document grows, so it is measured on fewer messages (noted).

Run: python bench/bench.py   (after `pip install ./bindings-python`)
"""

from __future__ import annotations

import copy
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import jsonpatch

import livecache

Row = Tuple[str, str, int, float]

# The pure-Python diff rates the issue measured, kept as a second, fixed baseline.
ISSUE_DIFF_RATES = {"chat": 575, "entities": 3}


def chat_message(i: int) -> Dict[str, Any]:
    return {"id": i, "channel": "redux", "userName": f"user{i % 50}", "text": f"message number {i}"}


class Sink:
    """The Python callback: counts operations and signals when the last version arrived."""

    def __init__(self, target_version: int) -> None:
        self.target = target_version
        self.ops = 0
        self.done = threading.Event()
        self.snapshot = threading.Event()

    def __call__(self, event: Dict[str, Any]) -> None:
        if event["type"] == "snapshot":
            self.snapshot.set()
        if event["type"] == "patch":
            self.ops += len(event["patches"])
        if event.get("version", 0) >= self.target:
            self.done.set()


def run_livecache(config: Dict[str, Any], hooks: Dict[str, Any], endpoint: str, initial: Any,
                  messages: List[Any]) -> float:
    with livecache.Client(config, {endpoint: {"query_fn": lambda arg: initial, **hooks}}) as client:
        sink = Sink(1 + len(messages))
        sub = client.subscribe(endpoint, "redux", on_event=sink)
        sub.loaded().result(60)
        # The first snapshot (the whole document, converted once) is not part of the rate.
        sink.snapshot.wait(60)
        start = time.perf_counter()
        for m in messages:
            client.push_message(endpoint, "redux", m)
        if not sink.done.wait(600):
            raise RuntimeError(f"did not finish: {sub.snapshot()['version']}")
        elapsed = time.perf_counter() - start
        assert sub.snapshot()["version"] == 1 + len(messages)
        sub.unsubscribe()
    return len(messages) / elapsed


def run_make_patch(initial: Any, messages: List[Any], change: Callable[[Any, Any], Any]) -> float:
    doc = copy.deepcopy(initial)
    callback_ops = 0
    start = time.perf_counter()
    for m in messages:
        new = change(doc, m)  # an immutable update that shares every unchanged part
        patch = jsonpatch.make_patch(doc, new)
        callback_ops += len(patch.patch)
        doc = new
    return len(messages) / (time.perf_counter() - start)


def run_apply_patch(initial: Any, messages: List[Any], ops_of: Callable[[Any], List[Dict[str, Any]]]) -> float:
    doc = copy.deepcopy(initial)
    callback_ops = 0
    start = time.perf_counter()
    for m in messages:
        ops = ops_of(m)
        doc = jsonpatch.apply_patch(doc, ops, in_place=True)
        callback_ops += len(ops)
    return len(messages) / (time.perf_counter() - start)


def chat_rows(appends: int, diff_appends: int) -> List[Row]:
    initial = [chat_message(i) for i in range(1000)]
    messages = [chat_message(1000 + i) for i in range(appends)]
    stream: Dict[str, Any] = {"endpoints": {"getMessages": {"stream": {"apply": "append"}}}}
    hooked: Dict[str, Any] = {"endpoints": {"getMessages": {"stream": {}}}}

    def on_message(draft: Any, message: Any, arg: Any) -> None:
        draft.append(message)

    def append(doc: Any, m: Any) -> Any:
        return [*doc, m]

    return [
        ("chat", "livecache rule (append)", appends, run_livecache(stream, {}, "getMessages", initial, messages)),
        ("chat", "livecache hook (on_message)", appends,
         run_livecache(hooked, {"on_message": on_message}, "getMessages", initial, messages)),
        ("chat", "python make_patch", diff_appends, run_make_patch(initial, messages[:diff_appends], append)),
        ("chat", "python apply_patch (hand-built)", appends,
         run_apply_patch(initial, messages, lambda m: [{"op": "add", "path": "/-", "value": m}])),
    ]


def entity_rows(n: int, updates: int, diff_updates: int) -> List[Row]:
    rng = random.Random(1)
    initial = {"ids": list(range(n)),
               "entities": {str(i): {"id": i, "name": f"entity {i}", "count": 0, "tags": ["a", "b"]} for i in range(n)}}
    messages = [{"id": rng.randrange(n), "count": i + 1} for i in range(updates)]
    stream: Dict[str, Any] = {"endpoints": {"getEntities": {"stream": {"apply": {"upsert": {"selectId": "id"}}}}}}
    hooked: Dict[str, Any] = {"endpoints": {"getEntities": {"stream": {}}}}

    def on_message(draft: Any, message: Any, arg: Any) -> None:
        draft["entities"][str(message["id"])]["count"] = message["count"]

    def change(doc: Any, m: Any) -> Any:
        key = str(m["id"])
        entities = {**doc["entities"], key: {**doc["entities"][key], "count": m["count"]}}
        return {**doc, "entities": entities}

    label = f"entities {n:,}"
    rows: List[Row] = [
        (label, "livecache rule (upsert)", updates, run_livecache(stream, {}, "getEntities", initial, messages)),
        (label, "livecache hook (on_message)", updates,
         run_livecache(hooked, {"on_message": on_message}, "getEntities", initial, messages)),
    ]
    if diff_updates:
        rows.append((label, "python make_patch", diff_updates, run_make_patch(initial, messages[:diff_updates], change)))
    rows.append((label, "python apply_patch (hand-built)", updates,
                 run_apply_patch(initial, messages,
                                 lambda m: [{"op": "replace", "path": f"/entities/{m['id']}/count", "value": m["count"]}])))
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    rows: List[Row] = []
    rows += chat_rows(2_000 if quick else 20_000, 200 if quick else 2_000)
    rows += entity_rows(10_000, 2_000 if quick else 20_000, 5 if quick else 20)
    if not quick:
        rows += entity_rows(100_000, 20_000, 0)
    baseline: Dict[str, float] = {w: r for w, how, _, r in rows if how == "python make_patch"}
    print(f"{'workload':<18} {'how':<34} {'messages':>9} {'msgs/s':>12} {'vs make_patch':>14} {'vs issue diff rate':>19}")
    print("-" * 111)
    for workload, how, count, rate in rows:
        base = baseline.get(workload) or baseline.get("entities 10,000")
        ratio = f"{rate / base:,.0f}x" if base else "-"
        issue = ISSUE_DIFF_RATES["chat" if workload == "chat" else "entities"]
        print(f"{workload:<18} {how:<34} {count:>9,} {rate:>12,.0f} {ratio:>14} {rate / issue:>18,.0f}x")
    print("\nvs issue diff rate: against the diff-path rates quoted in the issue "
          f"({ISSUE_DIFF_RATES['chat']}/s chat appends, {ISSUE_DIFF_RATES['entities']}/s entity updates).")


if __name__ == "__main__":
    main()
