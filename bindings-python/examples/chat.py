"""The seed's chat client: history over HTTP, then every new message of the channel live."""

import asyncio

import livecache

config = {
    "baseUrl": "http://127.0.0.1:8080/",
    "endpoints": {"getMessages": {
        "query": "messages/{arg}",
        "stream": {"url": "ws://127.0.0.1:8080/", "filter": {"channel": "{arg}"}, "apply": "append"},
    }},
}


async def main() -> None:
    with livecache.Client(config) as client:
        sub = client.subscribe("getMessages", "redux")
        for message in await sub.loaded():
            print(message["text"])
        async for event in sub.events():
            for op in event.get("patches", []):
                print(op["value"]["text"])


if __name__ == "__main__":
    asyncio.run(main())
