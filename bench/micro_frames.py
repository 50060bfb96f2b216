"""Micro-benchmark of the two ``listen`` hot paths (not a test).

Prints frames/s for ``prismer_cli.transport.wsframes.FrameReader`` reading 200,000
250-byte text frames over a ``socket.socketpair()`` (a thread sends them), and
events/s for ``prismer_cli.transport.sseparse.SSEParser`` parsing 200,000 events fed in
64 KiB chunks.  ``listen`` must sustain 100,000 events/s end to end on a 2-core
machine, so these parts alone should reach well above that (aim: 250,000
frames/s and 200,000 events/s).

Usage: python bench/micro_frames.py [--count N] [--repeat R]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prismer_cli.transport.sseparse import SSEParser
from prismer_cli.transport.wsframes import FrameReader

PAYLOAD_SIZE = 250
CHUNK_SIZE = 65536


def json_payload(i: int, size: int = PAYLOAD_SIZE) -> bytes:
    """Return a JSON object of exactly ``size`` bytes numbered ``i``."""
    head = b'{"seq":%d,"type":"tick","pad":"' % i
    return head + b"x" * (size - len(head) - 2) + b'"}'


def bench_frames(count: int, *, with_buffered: bool) -> float:
    """Return frames/s for reading ``count`` text frames over a socketpair."""
    frame_head = bytes((0x81, 126)) + PAYLOAD_SIZE.to_bytes(2, "big")
    if PAYLOAD_SIZE < 126:
        frame_head = bytes((0x81, PAYLOAD_SIZE))
    blob = b"".join(frame_head + json_payload(i) for i in range(count))
    sender, receiver = socket.socketpair()
    receiver.settimeout(30)
    thread = threading.Thread(target=sender.sendall, args=(blob,), daemon=True)
    reader = FrameReader(receiver)
    read = reader.read
    buffered = reader.buffered
    total = 0
    start = time.perf_counter()
    thread.start()
    if with_buffered:
        for _ in range(count):
            buffered()
            total += len(read()[1])
    else:
        for _ in range(count):
            total += len(read()[1])
    elapsed = time.perf_counter() - start
    thread.join()
    sender.close()
    receiver.close()
    assert total == count * PAYLOAD_SIZE, total
    return count / elapsed


def bench_sse(count: int, *, with_id: bool) -> float:
    """Return events/s for parsing ``count`` events in 64 KiB chunks."""
    parts = []
    for i in range(count):
        if with_id:
            parts.append(b"id: %d\nevent: tick\n" % i)
        parts.append(b"data: " + json_payload(i) + b"\n\n")
    stream = b"".join(parts)
    chunks = [stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE)]
    parser = SSEParser()
    feed = parser.feed
    seen = 0
    start = time.perf_counter()
    for chunk in chunks:
        seen += len(feed(chunk))
    elapsed = time.perf_counter() - start
    assert seen == count, seen
    return count / elapsed


def main() -> None:
    """Run each benchmark ``--repeat`` times and print the best rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    count = args.count
    cases: list[tuple[str, str, Callable[[], float]]] = [
        (
            f"FrameReader.read, {PAYLOAD_SIZE}-byte text frames",
            "frames/s",
            partial(bench_frames, count, with_buffered=False),
        ),
        (
            "FrameReader.buffered + read",
            "frames/s",
            partial(bench_frames, count, with_buffered=True),
        ),
        ("SSEParser.feed, data-only events", "events/s", partial(bench_sse, count, with_id=False)),
        ("SSEParser.feed, id + event + data", "events/s", partial(bench_sse, count, with_id=True)),
    ]
    print(f"{args.count} messages, best of {args.repeat}")
    for name, unit, run in cases:
        best = max(run() for _ in range(args.repeat))
        print(f"{name:<40} {best:>12,.0f} {unit}")


if __name__ == "__main__":
    main()
