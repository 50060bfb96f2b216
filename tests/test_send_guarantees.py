"""`send` keeps the README's promises on a large stream, through the real command.

- issue 17.1: a healthy connection is closed cleanly once every line is confirmed, never
  abandoned while the server still reads (docs dialect: nothing is answered but pings);
- issue 17.6: every result carries its idempotency key, and `--retry-file` writes what is not
  ok so that `send < FILE` finishes the job without posting anything twice;
- issue 18.1: lines to one conversation are stored in input order, even by a server that
  handles socket messages concurrently (the real server's `ws/handler.ts` does).

Each test counts on the server's side: what it stored, exactly once.
"""

from __future__ import annotations

import json
from collections import Counter

from tests.support.cli import env_for, run, user_id
from tests.support.serverfixture import ServerFactory, ServerProcess

TOKEN = "guarantees-token"
ME = user_id(TOKEN)


def lines_for(conv: str, n: int, prefix: str = "m") -> str:
    return "".join(
        json.dumps({"conversationId": conv, "content": f"{prefix}{i}"}) + "\n" for i in range(n)
    )


def stored_once(server: ServerProcess, conv: str) -> Counter[str]:
    return Counter(m["content"] for m in server.messages(conv))


# ── 17.1: the end of stdin is not the end of the job ─────────────────────


def test_docs_send_of_a_large_stream_waits_for_every_confirmation(
    server_factory: ServerFactory,
) -> None:
    """30,000 lines in the docs dialect: when stdin ends much of the stream is still in the
    socket buffers, unread by the server. `send` waits for the pongs that confirm it, then closes
    cleanly: every result ok, every line stored exactly once, exit 0."""
    server = server_factory(dialect="docs")
    n = 30_000
    result = run("send", env=env_for(server.url, TOKEN), input=lines_for("c-big", n), timeout=120)
    assert result.code == 0, result.err[-2000:]
    assert result.err == ""
    results = result.lines
    assert len(results) == n
    assert all(r["ok"] for r in results), next(r for r in results if not r["ok"])
    stored = stored_once(server, "c-big")
    assert len(stored) == n and set(stored.values()) == {1}
