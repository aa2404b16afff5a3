"""Writes the committed seed corpora (fuzz/seeds/<target>/): inputs that reach each target's
interesting paths, so a short run starts deep instead of from nothing. Run from anywhere:
python3 fuzz/make_seeds.py. The JSON Patch seeds come from the RFC 6902 suite in the shared
test data (json-patch-tests)."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "shared", "testdata", "json-patch-tests")


def write(target, name, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def configs():
    write("config", "spec", json.dumps({
        "baseUrl": "http://127.0.0.1:8080/",
        "keepUnusedDataFor": 60,
        "endpoints": {"getMessages": {
            "query": "messages/{arg}",
            "transformResponse": {"entityAdapter": {"selectId": "id", "sortBy": "id"}},
            "keepUnusedDataFor": 5,
            "stream": {"url": "ws://127.0.0.1:8080/", "filter": {"channel": "{arg}"},
                       "schema": {"type": "object", "required": ["id", "channel", "text"]},
                       "apply": "append", "reconnect": {"initialDelayMs": 100, "maxDelayMs": 10000},
                       "heartbeat": {"intervalMs": 15000, "timeoutMs": 10000}, "maxMessageBytes": 16777216,
                       "resyncOnReconnect": True, "bufferBeforeLoaded": 10000}}}}))
    write("config", "sse", json.dumps({"endpoints": {"feed": {"stream": {
        "url": "http://127.0.0.1:1/events", "transport": "sse", "events": ["message", "update"], "apply": "replace"}}}}))
    write("config", "graphql", json.dumps({"endpoints": {"onMessage": {"stream": {
        "url": "ws://127.0.0.1:1/graphql", "transport": "graphql-ws",
        "subscription": {"query": "subscription { messageAdded { id } }"}, "apply": "append"}}}}))
    write("config", "shared", json.dumps({"headers": {"Authorization": "Bearer {arg.token}"}, "endpoints": {"room": {"stream": {
        "url": "ws://127.0.0.1:1/", "share": True, "subscribe": {"op": "join", "room": "{arg.room}"},
        "unsubscribe": {"op": "leave", "room": "{arg.room}"}, "apply": {"upsert": {"selectId": "id"}}}}}}))
    write("config", "mutation", json.dumps({"endpoints": {
        "getPosts": {"query": "posts", "providesTags": ["Post"], "pollingInterval": 1000},
        "addPost": {"mutation": {"url": "posts", "method": "POST"}, "invalidatesTags": ["Post"]}}}))
    write("config", "bad", '{"endpoints": {"a": {"query": "x/{arg.}"}}}')


def frames():
    # control byte: endpoint in the low 3 bits, data position, hook answers; then NUL-separated frames.
    cases = {
        "append": (0, ["[]", '{"id":1}', '{"id":1}', '{"id":2}', "not json", '{"id":3}']),
        "upsert": (1, ['{"ids":[],"entities":{}}', '{"id":"a","n":1}', '{"id":"a","m":2}', "[1]"]),
        "remove": (2, ['{"ids":["a"],"entities":{"a":{"id":"a"}}}', '{"id":"a"}', '{"id":"b"}']),
        "jsonpatch": (3, ['{"a":[1,2]}', '[{"op":"add","path":"/a/-","value":3}]', '[{"op":"remove","path":"/x"}]',
                          '{"patches":[{"op":"replace","path":"/a","value":{}}]}']),
        "mergepatch": (4, ['{"a":{"b":1}}', '{"a":{"b":null,"c":2}}', "3"]),
        "replace": (5, ["null", '{"room":"r","v":1}', '{"room":"x","v":2}', '{"room":"r","v":3}']),
        "hook": (6 | (1 << 5), ['{"n":0}', '{"n":1}', '[{"op":"replace","path":"/n","value":2}]', '{"n":3}']),
        "batched": (7 | (2 << 3) | (3 << 5), ['{"n":0}', '[{"op":"add","path":"/m","value":1}]', '{"n":1}', '{"x":[]}']),
    }
    for name, (control, parts) in cases.items():
        write("frames", name, bytes([control]) + b"\0".join(p.encode() for p in parts))


def patches():
    count = 0
    for file in ("tests.json", "spec_tests.json"):
        path = os.path.join(SUITE, file)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            cases = json.load(f)
        for i, case in enumerate(cases):
            if "doc" not in case or "patch" not in case or case.get("disabled"):
                continue
            data = json.dumps(case["doc"]).encode() + b"\0" + json.dumps(case["patch"]).encode()
            write("patch", f"{file.split('.')[0]}-{i}", data)
            count += 1
    if count == 0:
        sys.exit("the RFC 6902 suite was not found at " + SUITE)


def keys():
    for i, arg in enumerate(['"redux"', '{"id":1,"page":2}', '{"b":[1.0,2.5e-7,1e21],"a":{"\u00e9":"\\u2028"}}',
                             "null", "-0", "123456789012345678901", '[{"z":1,"y":[{}]}]', '"\\ud83d\\ude00"']):
        write("cache_key", f"arg{i}", arg)


def sse():
    streams = {
        "simple": b"data: hello\n\n",
        "multiline": b"event: update\nid: 7\ndata: {\"a\":1}\ndata: more\n\n",
        "crlf": b"data: one\r\n\r\ndata: two\r\rdata: three\n\n",
        "retry": b"retry: 1500\n:comment\n\nid\ndata\n\n",
        "bom": b"\xef\xbb\xbfdata: x\n\n",
        "big": b"data: " + b"y" * 300 + b"\n\n" + b"data: after\n\n",
    }
    for name, body in streams.items():
        write("sse", name, bytes([40, 3]) + body)


def graphql():
    frames = {
        "ack": '{"type":"connection_ack"}',
        "next": '{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":1}}}}',
        "next_many": '{"id":"2","type":"next","payload":{"data":{"a":1,"b":2}}}',
        "next_errors": '{"id":"1","type":"next","payload":{"errors":[{"message":"boom"}]}}',
        "error": '{"id":"1","type":"error","payload":[{"message":"bad query"}]}',
        "complete": '{"id":"1","type":"complete"}',
        "ping": '{"type":"ping","payload":{}}',
        "unknown": '{"type":"what"}',
    }
    for name, text in frames.items():
        write("graphql_ws", name, text)


def c_abi():
    # Opcodes as c_abi.rs reads them: op % 16, then each operand's selector byte.
    programs = {
        # subscribe getDoc "a" with a callback, push a message, snapshot, unsubscribe, free.
        "subscribe_push": bytes([2, 1, 4, 5, 1, 4, 5, 4, 1, 4, 3, 0, 11]),
        # subscribe, free the client, then use and release the subscription.
        "free_first": bytes([1, 2, 0, 11, 9, 0, 3, 0]),
        # upsert, patch and undo, stats, kinds of odd codes.
        "upsert_patch": bytes([7, 1, 4, 5, 6, 1, 4, 0x36]) + b'[{"op"' + bytes([8, 12, 200, 12, 0]),
        # NULLs and bad UTF-8 everywhere.
        "nulls": bytes([0, 0, 0, 4, 0, 0, 14, 0, 0, 0, 0x26]) + b"\xff\xfe" + bytes([0]),
        # close, then every call is CLOSED.
        "close": bytes([10, 1, 1, 4, 5, 1, 4, 5, 13, 1, 4, 8]),
    }
    for name, program in programs.items():
        write("c_abi", name, program)


if __name__ == "__main__":
    configs()
    frames()
    patches()
    keys()
    sse()
    graphql()
    c_abi()
