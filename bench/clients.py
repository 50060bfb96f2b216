"""The comparison clients: what a user would write instead of running prismer-rt.

Each does the same work as `prismer-rt listen --count N`: receive an event, parse its JSON,
write it as one line on stdout; it skips the docs dialect's auth_success frame and stops after
N events. They are written the way each library's documentation shows, with the obvious
speed-ups a careful user would make (bound methods, block-buffered stdout), nothing more.

    python bench/clients.py websockets URL N        # websockets' sync client
    python bench/clients.py websocket-client URL N  # websocket-client, default settings
    python bench/clients.py sseclient URL N         # requests + sseclient-py, as its README
    python bench/clients.py relay HOST PORT         # raw TCP -> stdout, the latency floor
    python bench/clients.py sync-json URL TOKEN     # requests paging GET /api/im/sync, json
    python bench/clients.py sync-orjson URL TOKEN   # the same loop with orjson

The two `sync` loops do what `prismer-rt listen --since all --no-follow` does, the plain way:
one requests Session, GET /api/im/sync?since=<cursor>&limit=500 until a page has no more
(`hasMore` false, or no events), each stored event printed as one JSON line as it came.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast


def with_websockets(url: str, count: int) -> int:
    from websockets.sync.client import connect

    write = sys.stdout.write
    loads = json.loads
    seen = 0
    with connect(url) as ws:
        first = loads(ws.recv())
        if first.get("type") != "auth_success":
            return 3
        for message in cast("Iterable[str]", ws):  # text frames: str (typed once, not per frame)
            loads(message)
            write(message + "\n")
            seen += 1
            if seen >= count:
                break
    sys.stdout.flush()
    return 0 if seen == count else 4


def with_websocket_client(url: str, count: int) -> int:
    import websocket

    write = sys.stdout.write
    loads = json.loads
    ws = websocket.create_connection(url)
    first = loads(ws.recv())
    if first.get("type") != "auth_success":
        return 3
    recv = cast("Callable[[], str]", ws.recv)  # text frames: str
    for _ in range(count):
        message = recv()
        loads(message)
        write(message + "\n")
    ws.close()
    sys.stdout.flush()
    return 0


def with_sseclient(url: str, count: int) -> int:
    import requests
    import sseclient

    write = sys.stdout.write
    loads = json.loads
    dumps = json.dumps
    seen = 0
    response = requests.get(url, stream=True, headers={"Accept": "text/event-stream"})
    # sseclient-py reads the response as its README shows (its stub asks for an iterator).
    client = sseclient.SSEClient(cast("Iterator[bytes]", response))
    for event in client.events():
        loads(event.data)
        # the same envelope prismer-rt prints: {"type": <event name>, "payload": <data>}
        write('{"type":' + dumps(event.event) + ',"payload":' + event.data + "}\n")
        seen += 1
        if seen >= count:
            break
    client.close()
    sys.stdout.flush()
    return 0 if seen == count else 4


def sync_pages(url: str, token: str, loads: Callable[[bytes], Any]) -> Iterator[list[Any]]:
    """GET /api/im/sync from the start, one page of 500 after another, over one Session."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    endpoint = url.rstrip("/") + "/api/im/sync"
    since = 0
    while True:
        answer = session.get(endpoint, params={"since": since, "limit": 500})
        answer.raise_for_status()
        data = loads(answer.content)["data"]
        events = data["events"]
        yield events
        if not events or not data["hasMore"]:
            return
        since = data["cursor"]


def sync_json(url: str, token: str) -> int:
    """The plain loop: requests, json.loads, json.dumps, one print per event."""
    write, dumps = sys.stdout.write, json.dumps
    for events in sync_pages(url, token, json.loads):
        for event in events:
            write(dumps(event) + "\n")
    sys.stdout.flush()
    return 0


def sync_orjson(url: str, token: str) -> int:
    """The same loop with orjson, writing bytes: what a user tuning it would do."""
    import orjson

    write, dumps = sys.stdout.buffer.write, orjson.dumps
    for events in sync_pages(url, token, orjson.loads):
        for event in events:
            write(dumps(event) + b"\n")
    sys.stdout.buffer.flush()
    return 0


def relay(host: str, port: int) -> int:
    """Copy a TCP stream to stdout as it comes: the cheapest process in the path."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, write = sock.recv, os.write
    while True:
        data = recv(65536)
        if not data:
            return 0
        write(1, data)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, target, number = argv
    if kind == "relay":
        return relay(target, int(number))
    if kind == "sync-json":
        return sync_json(target, number)
    if kind == "sync-orjson":
        return sync_orjson(target, number)
    runner = {
        "websockets": with_websockets,
        "websocket-client": with_websocket_client,
        "sseclient": with_sseclient,
    }.get(kind)
    if runner is None:
        print(f"unknown client {kind!r}", file=sys.stderr)
        return 2
    return runner(target, int(number))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
