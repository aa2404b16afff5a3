"""A program that uses an installed livecache wheel the way any project would (and is type-checked
with mypy --strict against the package's own stubs). No server: the entry's data comes from a
query_fn hook, its changes from push_message through the stream pipeline. Exit 0 on success."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Dict, List

import livecache

CONFIG: Dict[str, Any] = {"endpoints": {"getMessages": {"stream": {"apply": "append"}}}}


def query_fn(arg: Any) -> List[Dict[str, Any]]:
    return [{"id": 1, "text": f"welcome to {arg}"}]


async def main() -> int:
    events: List[Dict[str, Any]] = []
    hooks = {"getMessages": {"query_fn": query_fn}}
    with livecache.Client(CONFIG, hooks) as client:
        sub = client.subscribe("getMessages", "general", on_event=events.append)
        data = await sub.loaded()
        assert data == [{"id": 1, "text": "welcome to general"}], data
        stream = sub.events()
        client.push_message("getMessages", "general", {"id": 2, "text": "hello"})
        event = await asyncio.wait_for(stream.__anext__(), 30)
        while event["type"] != "patch":
            event = await asyncio.wait_for(stream.__anext__(), 30)
        assert event["patches"] == [{"op": "add", "path": "/-", "value": {"id": 2, "text": "hello"}}], event
        assert sub.snapshot()["data"][-1]["text"] == "hello"
        try:
            client.push_message("nowhere", "x", {})
        except livecache.LivecacheError as error:
            print(f"bad endpoint: {type(error).__name__}: {error}")
        else:
            raise AssertionError("an unknown endpoint must raise")
        sub.unsubscribe()
    print(f"python {sys.version.split()[0]}, livecache from {livecache.__file__}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
