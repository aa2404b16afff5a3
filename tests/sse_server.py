"""The chat over Server-Sent Events, for the SSE tests (SPEC T4), on 127.0.0.1: `aiohttp` with
`aiohttp-sse` writing the event stream (an implementation no one here wrote).

    python tests/sse_server.py --port 0

prints `PORT <n>` as its first line of stdout, then serves until killed.

- `GET /messages/{channel}`: the channel's messages as a JSON array (the `query`).
- `GET /events/{channel}`: the event stream. Each posted message of the channel is one
  `message` event whose `id:` is the message id; a request with `Last-Event-ID: N` first gets
  the channel's messages with ids above N (a replay, as real SSE servers do). Every stream starts
  with `retry: 50` and sends `: ping` comments every `ping` seconds (query string, default 15).
- Admin routes (query-string parameters):
  - `POST /post?channel=C&userName=U&text=T`: stores and streams a message, answers it as JSON.
  - `POST /typing?channel=C`: a `typing` event (a name clients do not listen to by default).
  - `POST /raw?channel=C&data=D`: one `message` event with data D as it is (bad input).
  - `POST /drop`: ends every open event stream (a lost connection).
  - `POST /hold` / `POST /release`: while held, event-stream requests get 503 (the client is
    kept away while messages are posted).
  - `POST /answer?status=S`: from now on event-stream requests get status S with no body
    (`204`: the server's "do not reconnect"); `status=` empty: back to streaming.
  - `POST /require?header=H&value=V`: requests without `H: V` get 401 (`value` empty: none).
  - `GET /seen`: `requests`, the headers (names lower-case) of the last 20 event-stream
    requests, `open`, the number of streams open now, and `fetches`, of `/messages`.
  - `POST /reset`: back to the seed messages, nothing held or required.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

# The same seed as the WebSocket chat server's.
from chat_server import SEED  # noqa: E402


class Chat:
    def __init__(self) -> None:
        self.streams: dict[EventSourceResponse, str] = {}
        self.reset()

    def reset(self) -> None:
        self.messages = [dict(m) for m in SEED]
        self.next_id = len(self.messages) + 1
        self.held = False
        self.status: int | None = None
        self.required: tuple[str, str] | None = None
        self.seen: list[dict[str, str]] = []
        self.fetches = 0
        for stream in list(self.streams):
            stream.stop_streaming()

    async def to_channel(self, channel: str, data: str, event: str = "message", id: str | None = None) -> None:
        for stream, ch in list(self.streams.items()):
            if ch == channel:
                try:
                    await stream.send(data, event=event, id=id)
                except (ConnectionResetError, RuntimeError):
                    self.streams.pop(stream, None)


chat = Chat()


def arg(request: web.Request, name: str, default: str = "") -> str:
    return request.query.get(name, default)


async def messages(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    chat.fetches += 1
    return web.json_response([m for m in chat.messages if m["channel"] == channel])


async def events(request: web.Request) -> web.StreamResponse:
    chat.seen = (chat.seen + [{k.lower(): v for k, v in request.headers.items()}])[-20:]
    if chat.required and request.headers.get(chat.required[0]) != chat.required[1]:
        return web.Response(status=401, text="unauthorized")
    if chat.held:
        return web.Response(status=503, text="held")
    if chat.status is not None:
        return web.Response(status=chat.status)
    channel = request.match_info["channel"]
    ping = float(arg(request, "ping", "15"))
    async with sse_response(request, ping_interval=ping) as stream:
        chat.streams[stream] = channel
        try:
            # `send` always writes a data line (an event with empty data): the retry goes alone.
            await stream.write(b"retry: 50\r\n\r\n")
            last = request.headers.get("Last-Event-ID")
            if last is not None and last.isdigit():
                for m in chat.messages:
                    if m["channel"] == channel and m["id"] > int(last):
                        await stream.send(json.dumps(m), id=str(m["id"]))
            await stream.wait()
        finally:
            chat.streams.pop(stream, None)
    return stream


async def post(request: web.Request) -> web.Response:
    m: dict[str, Any] = {"id": chat.next_id, "channel": arg(request, "channel"),
                         "userName": arg(request, "userName", "tester"), "text": arg(request, "text")}
    chat.next_id += 1
    chat.messages.append(m)
    await chat.to_channel(m["channel"], json.dumps(m), id=str(m["id"]))
    return web.json_response(m)


async def typing(request: web.Request) -> web.Response:
    await chat.to_channel(arg(request, "channel"), json.dumps({"typing": True}), event="typing")
    return web.json_response({})


async def raw(request: web.Request) -> web.Response:
    await chat.to_channel(arg(request, "channel"), arg(request, "data"))
    return web.json_response({})


async def drop(request: web.Request) -> web.Response:
    dropped = len(chat.streams)
    for stream in list(chat.streams):
        stream.stop_streaming()
    return web.json_response({"dropped": dropped})


async def hold(request: web.Request) -> web.Response:
    chat.held = request.path == "/hold"
    return web.json_response({})


async def answer(request: web.Request) -> web.Response:
    status = arg(request, "status")
    chat.status = int(status) if status else None
    return web.json_response({})


async def require(request: web.Request) -> web.Response:
    value = arg(request, "value")
    chat.required = (arg(request, "header"), value) if value else None
    return web.json_response({})


async def seen(request: web.Request) -> web.Response:
    return web.json_response({"requests": chat.seen, "open": len(chat.streams), "fetches": chat.fetches})


async def reset(request: web.Request) -> web.Response:
    chat.reset()
    return web.json_response({})


def app() -> web.Application:
    a = web.Application()
    a.add_routes([
        web.get("/messages/{channel}", messages),
        web.get("/events/{channel}", events),
        web.post("/post", post), web.post("/typing", typing), web.post("/raw", raw),
        web.post("/drop", drop), web.post("/hold", hold), web.post("/release", hold),
        web.post("/answer", answer), web.post("/require", require),
        web.get("/seen", seen), web.post("/reset", reset),
    ])
    return a


async def main(port: int) -> None:
    runner = web.AppRunner(app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=0.1)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
