"""The shared chat test server (SPEC §1): the seed's chat backend, on 127.0.0.1, for every
suite's end-to-end tests and the C example.

    python tests/chat_server.py --port 0

prints `PORT <n>` as its first line of stdout (the chat port) and `ADMIN <m>` as its second
(the same admin routes, with JSON request bodies), then serves until killed.

Chat port (one port, the `websockets` library):
- `GET /messages/{channel}`: the channel's messages as a JSON array (the `query` of the seed);
  with `?envelope=1`, `{"items": [...], "last": N}`, N being the newest stored id (where a resume
  after this answer starts).
- WebSocket upgrade on `/`: every posted message `{id, channel, userName, text}` is broadcast to
  every socket as one text frame (clients filter by channel, as the seed does).
- Admin routes, for tests (no request body here: the WebSocket library refuses one, so
  parameters go in the query string):
  - `POST /post?channel=C&userName=U&text=T`: stores and broadcasts a message, answers it as JSON.
  - `POST /raw?text=T`: broadcasts T as one text frame as it is (bad input for E3 tests).
  - `POST /drop`: drops every socket without a close frame (a lost connection, L8);
    `POST /drop?mode=close` closes them with a close handshake (code 1012) instead.
  - `GET /stats`: connection counters as JSON (below).
  - `POST /reset`: back to the seed messages and zeroed counters.
  - `POST /require?header=H&value=V`: from now on, message fetches and upgrades without header
    `H: V` are answered 401 (`value` empty: no requirement).
  - `GET /seen`: what clients sent: `handshakes` and `requests` (the headers of the last 20
    upgrades / message fetches, names lower-case) and `frames` (the last 50 text frames).
  - `POST /post?...&silent=1`: stores the message without broadcasting it (one the stream loses).
  - `POST /post?...&holdAnswer=1`: stores and broadcasts at once but answers only after
    `POST /release` (a slow response); `holdEcho=1` answers at once and broadcasts after
    `POST /release` (a late echo); `hold=1` stores (and broadcasts) only after `POST /release`,
    then answers (a slow write). `held` in `GET /stats` counts what waits; `fail=S` stores
    nothing and answers status S (a failed mutation). Every `/post` counts in `posts`.
  - `POST /seed?channel=C&count=N`: stores N messages at once, silently (a long history, for
    benchmarks).
  - `POST /refuseResume?on=1`: from now on upgrades that ask to resume (`?after=`) get 409
    (`on=` empty: resumes are served again).

Resume (SPEC T6): an upgrade on `/?after=N` first gets every stored message with an id above N,
in order, then the live ones.

Clients may send `{"type": "subscribe", "channel": C}` / `{"type": "unsubscribe", "channel": C}`
frames (SPEC T2): a socket that has subscribed gets only its channels' messages; one that never
did gets every message.

Admin port: the same routes, and `POST /post` / `POST /raw` also take a JSON body
(`{"channel", "userName", "text"}` / `{"text"}`).

`/stats`: `connectionsOpened`, `connectionsOpen`, `closeFramesReceived` (sockets whose client
sent a close frame), `clientInitiatedCloses` (the client sent its close frame first: a
close handshake started by the client, SPEC L7), `abortedConnections` (ended with no close
frame from the client), `messagesPosted`, `httpRequests` (message fetches), `httpBytes` (their
response bodies), `framesSent` / `frameBytes` (text frames written to sockets, replays included),
`resumes` (upgrades with `after`), `paths` (upgrade paths seen).
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import sys
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

SEED = [
    {"id": 1, "channel": "redux", "userName": "markerikson", "text": "Welcome to #redux"},
    {"id": 2, "channel": "redux", "userName": "phryneas", "text": "RTK Query streams updates with onCacheEntryAdded"},
    {"id": 3, "channel": "general", "userName": "lenz", "text": "hello everyone"},
]


class Chat:
    def __init__(self) -> None:
        self.sockets: set[ServerConnection] = set()
        self.reset()

    def reset(self) -> None:
        # A post held by `hold=1` from before the reset goes on; later ones wait again.
        if getattr(self, "release", None) is not None:
            self.release.set()
        self.release = asyncio.Event()
        self.held = 0
        self.messages = [dict(m) for m in SEED]
        self.next_id = len(self.messages) + 1
        self.stats = {
            "connectionsOpened": 0,
            "closeFramesReceived": 0,
            "clientInitiatedCloses": 0,
            "abortedConnections": 0,
            "messagesPosted": 0,
            "posts": 0,
            "httpRequests": 0,
            "httpBytes": 0,
            "framesSent": 0,
            "frameBytes": 0,
            "resumes": 0,
        }
        self.refuse_resume = False
        self.paths: list[str] = []
        self.handshakes: list[dict[str, str]] = []
        self.requests: list[dict[str, str]] = []
        self.frames: list[str] = []
        self.required: tuple[str, str] | None = None
        self.channels: dict[ServerConnection, set[str]] = {}

    def snapshot_stats(self) -> dict:
        return {**self.stats, "connectionsOpen": len(self.sockets), "paths": self.paths[-20:], "held": self.held}

    def post(self, channel: str, user_name: str, text: str, silent: bool = False) -> dict:
        message = {"id": self.next_id, "channel": channel, "userName": user_name, "text": text}
        self.next_id += 1
        self.messages.append(message)
        self.stats["messagesPosted"] += 1
        if not silent:
            self.broadcast(json.dumps(message), channel)
        return message

    async def replay(self, ws: ServerConnection, after: int) -> None:
        """T6: what a resuming socket missed, in order. The list is read to its end at the time
        of the last send, and the socket joins the broadcast with no await in between, so
        nothing is sent twice or skipped."""
        i = 0
        while i < len(self.messages):
            m = self.messages[i]
            i += 1
            if m["id"] > after:
                await self._send(ws, json.dumps(m))

    async def echo_on_release(self, message: dict) -> None:
        await self.release.wait()
        self.broadcast(json.dumps(message), message["channel"])

    def broadcast(self, frame: str, channel: str | None = None) -> None:
        for ws in list(self.sockets):
            subscribed = self.channels.get(ws)
            if channel is None or subscribed is None or channel in subscribed:
                asyncio.ensure_future(self._send(ws, frame))

    def authorized(self, headers: Headers) -> bool:
        if self.required is None:
            return True
        name, value = self.required
        return headers.get(name) == value

    def received(self, ws: ServerConnection, frame: str) -> None:
        self.frames = (self.frames + [frame])[-50:]
        try:
            message = json.loads(frame)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("channel"), str):
            if message.get("type") == "subscribe":
                self.channels.setdefault(ws, set()).add(message["channel"])
            elif message.get("type") == "unsubscribe":
                self.channels.setdefault(ws, set()).discard(message["channel"])

    async def _send(self, ws: ServerConnection, frame: str) -> None:
        try:
            await ws.send(frame)
            self.stats["framesSent"] += 1
            self.stats["frameBytes"] += len(frame.encode())
        except ConnectionClosed:
            pass

    async def drop(self, mode: str) -> int:
        victims = list(self.sockets)
        for ws in victims:
            if mode == "close":
                asyncio.ensure_future(ws.close(1012, "server restart"))
            else:
                ws.transport.abort()
        return len(victims)

    # ---- routes shared by both ports ----

    async def route(self, method: str, path: str, query: dict[str, str], body: dict | None) -> tuple[int, object] | None:
        params = dict(query)
        if body:
            params.update({k: v for k, v in body.items() if isinstance(v, str)})
        if method == "GET" and path.startswith("/messages/"):
            channel = unquote(path[len("/messages/"):])
            self.stats["httpRequests"] += 1
            found = [m for m in self.messages if m["channel"] == channel]
            self.stats["httpBytes"] += len(json.dumps(found).encode())
            if params.get("envelope") == "1":
                # Where the answer stands, beside it (what a client resumes after: T6 `initial`).
                return 200, {"items": found, "last": max((m["id"] for m in self.messages), default=0)}
            return 200, found
        if method == "GET" and path == "/stats":
            return 200, self.snapshot_stats()
        if method == "GET" and path == "/seen":
            return 200, {"handshakes": self.handshakes[-20:], "requests": self.requests[-20:], "frames": self.frames}
        if method == "POST" and path == "/require":
            self.required = (params["header"], params["value"]) if params.get("value") else None
            return 200, {"required": self.required is not None}
        if method == "POST" and path == "/post":
            self.stats["posts"] += 1
            if params.get("fail"):
                return int(params["fail"]), {"error": "the server refused the post"}
            missing = [k for k in ("channel", "userName", "text") if k not in params]
            if missing:
                return 400, {"error": f"missing {', '.join(missing)}"}
            if params.get("hold") == "1":
                # Stored only once a test says so (`POST /release`): other messages come first.
                self.held += 1
                await self.release.wait()
            hold_echo = params.get("holdEcho") == "1"
            message = self.post(params["channel"], params["userName"], params["text"], params.get("silent") == "1" or hold_echo)
            if hold_echo:
                self.held += 1
                asyncio.ensure_future(self.echo_on_release(message))
            if params.get("holdAnswer") == "1":
                self.held += 1
                await self.release.wait()
            return 200, message
        if method == "POST" and path == "/release":
            self.release.set()
            return 200, {"released": True}
        if method == "POST" and path == "/raw":
            if "text" not in params:
                return 400, {"error": "missing text"}
            self.broadcast(params["text"])
            return 200, {"sent": len(self.sockets)}
        if method == "POST" and path == "/seed":
            for i in range(int(params.get("count", "0"))):
                self.post(params.get("channel", "bench"), "seed", f"history {i}", silent=True)
            return 200, {"messages": len(self.messages)}
        if method == "POST" and path == "/refuseResume":
            self.refuse_resume = bool(params.get("on"))
            return 200, {"refuseResume": self.refuse_resume}
        if method == "POST" and path == "/drop":
            return 200, {"dropped": await self.drop(params.get("mode", "abort"))}
        if method == "POST" and path == "/reset":
            self.reset()
            return 200, {"reset": True}
        return None


def json_response(status: int, payload: object) -> Response:
    body = json.dumps(payload).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def split_target(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return parts.path, {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-port", type=int, default=0)
    args = parser.parse_args()
    chat = Chat()

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path, query = split_target(request.path)
        seen = {k.lower(): v for k, v in request.headers.raw_items()}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            chat.paths.append(request.path)
            chat.handshakes = (chat.handshakes + [seen])[-20:]
            if not chat.authorized(request.headers):
                return json_response(401, {"error": "unauthorized"})
            if "after" in query and chat.refuse_resume:
                return json_response(409, {"error": "cannot resume"})
            return None
        if path.startswith("/messages/"):
            chat.requests = (chat.requests + [seen])[-20:]
            if not chat.authorized(request.headers):
                return json_response(401, {"error": "unauthorized"})
        routed = await chat.route(getattr(request, "method", "GET"), path, query, None)
        if routed is None:
            return json_response(404, {"error": f"no route for {path}"})
        return json_response(*routed)

    async def handler(ws: ServerConnection) -> None:
        chat.stats["connectionsOpened"] += 1
        after = split_target(ws.request.path)[1].get("after") if ws.request else None
        if after is not None and after.lstrip("-").isdigit():
            chat.stats["resumes"] += 1
            await chat.replay(ws, int(after))
        chat.sockets.add(ws)
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    chat.received(ws, frame)
        except ConnectionClosed:
            pass
        finally:
            chat.sockets.discard(ws)
            chat.channels.pop(ws, None)
            protocol = ws.protocol
            if protocol.close_rcvd is not None:
                chat.stats["closeFramesReceived"] += 1
                if protocol.close_rcvd_then_sent:
                    chat.stats["clientInitiatedCloses"] += 1
            else:
                chat.stats["abortedConnections"] += 1

    async def admin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            length = int(headers.get("content-length", "0"))
            raw = await reader.readexactly(length) if length else b""
            body = json.loads(raw) if raw.strip() else None
            path, query = split_target(target)
            routed = await chat.route(method, path, query, body if isinstance(body, dict) else None)
            status, payload = routed if routed else (404, {"error": f"no route for {path}"})
        except (ValueError, asyncio.IncompleteReadError) as e:
            status, payload = 400, {"error": str(e)}
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        await writer.drain()
        writer.close()

    async with serve(handler, "127.0.0.1", args.port, process_request=process_request, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        admin_server = await asyncio.start_server(admin, "127.0.0.1", args.admin_port)
        admin_port = admin_server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        print(f"ADMIN {admin_port}", flush=True)
        async with admin_server:
            await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
