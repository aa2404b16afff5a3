"""The seed's chat client written as RTK Query's `onCacheEntryAdded` example: the hook opens its own
WebSocket, waits for the first data, appends every message of its channel with `update_cached_data`,
and closes the socket when the entry is removed."""

import asyncio
import json
from typing import Any

import websockets

import livecache

WS_URL = "ws://127.0.0.1:8080/"


async def on_cache_entry_added(channel: Any, lifecycle: livecache.Lifecycle) -> None:
    async with websockets.connect(WS_URL) as ws:
        try:
            await lifecycle.cache_data_loaded

            async def listen() -> None:
                async for raw in ws:
                    data = json.loads(raw)
                    if isinstance(data, dict) and data.get("channel") == channel:
                        lifecycle.update_cached_data(lambda draft: draft.append(data))

            listener = asyncio.create_task(listen())
        except livecache.CacheEntryRemoved:
            pass
        await lifecycle.cache_entry_removed
    listener.cancel()


config = {"baseUrl": "http://127.0.0.1:8080/", "endpoints": {"getMessages": {"query": "messages/{arg}"}}}
hooks = {"getMessages": {"on_cache_entry_added": on_cache_entry_added}}


async def main() -> None:
    with livecache.Client(config, hooks) as client:
        sub = client.subscribe("getMessages", "redux", on_event=print)
        await sub.loaded()
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
