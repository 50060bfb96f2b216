"""Nothing lost, nothing doubled, never a false "ok" (issue 10), through the real command.

Each test counts on the server's side (what it stored, which connections it saw) and compares
the printed lines with what was emitted or sent.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.support.cli import (
    Background,
    accepted_connections,
    command,
    env_for,
    frames_in,
    join_conversations,
    run,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.serverfixture import ServerFactory, ServerProcess

TOKEN = "delivery-token"
ME = user_id(TOKEN)


def join(server: ServerProcess, *convs: str, token: str = TOKEN) -> None:
    """Make the user a participant of each conversation (server dialect; set-up)."""
    if server.dialect == "server":
        join_conversations(server, token, *convs)


def acks(log: list[dict[str, Any]]) -> int:
    return sum(1 for f in frames_in(log) if f.get("type") == "ack")


# ── listen: de-duplication ───────────────────────────────────────────────


def test_listen_prints_every_event_across_a_server_restart(server_factory: ServerFactory) -> None:
    """ackIds start again from ack_1 in a new server process: not a re-delivery."""
    server = server_factory(dialect="server")
    proc = Background("listen", "--count", "8", "--timeout", "20", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    for n in (1, 2, 3):
        server.emit("task.updated", {"taskId": "t1", "n": n}, to=ME)
    wait_until(lambda: acks(server.log()) >= 3)
    server.restart()
    wait_for_connections(server, 1)
    for n in range(4, 9):
        server.emit("task.updated", {"taskId": "t1", "n": n}, to=ME)
    result = proc.wait()
    assert result.code == 0, result.err
    assert [e["payload"]["n"] for e in result.lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [e["ackId"] for e in result.lines][3] == "ack_1"  # the new process's first


@pytest.mark.parametrize(
    ("dialect", "edit"), [("docs", "message.edited"), ("server", "message.edit")]
)
def test_repeated_events_about_one_message_all_print(
    server_factory: ServerFactory, dialect: str, edit: str
) -> None:
    """Three edits and three status changes of one message are six new events; a second
    message.new of the same message id (a re-broadcast) is not."""
    server = server_factory(dialect=dialect)
    proc = Background("listen", "--count", "7", "--timeout", "10", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    base = {"id": "m1", "conversationId": "c1"}
    sent = [("message.new", {**base, "content": "v0"})]
    sent += [(edit, {**base, "content": f"v{n}"}) for n in (1, 2, 3)]
    sent += [("message.status", {**base, "status": s}) for s in ("sent", "delivered", "read")]
    for kind, payload in sent[:1] + sent[:1] + sent[1:]:  # message.new twice
        server.emit(kind, payload, to=ME)
    result = proc.wait()
    assert result.code == 0, result.err
    assert [(e["type"], e["payload"]) for e in result.lines] == sent


# ── transport fallback on a 5xx or 429 answer to the upgrade ──────────────


def ws_refusals(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if r["kind"] == "refused" and r["path"].startswith("/ws")]


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_listen_falls_back_to_sse_on_502_and_tries_websocket_again(
    server_factory: ServerFactory, dialect: str
) -> None:
    """A 502 to the upgrade: SSE at once, said by -v and --meta; the next connection (after
    a restart that cleared the fault) is a WebSocket again."""
    server = server_factory(dialect=dialect)
    server.set_faults(["upgrade-status=502"])
    start = time.monotonic()
    env = env_for(server.url, TOKEN)
    proc = Background("-v", "listen", "--meta", "--count", "2", "--timeout", "20", env=env)
    wait_for_connections(server, 1)
    assert time.monotonic() - start < 5
    assert accepted_connections(server.log())[0]["kind"] == "sse_connect"
    assert len(ws_refusals(server.log())) == 1
    server.emit("message.new", {"id": "m1", "conversationId": "c1", "content": "#1"}, to=ME)
    wait_until(lambda: acks(server.log()) >= 1 or time.monotonic() - start > 3)
    time.sleep(0.3)
    server.restart()  # a new process: no fault any more
    wait_for_connections(server, 1)
    assert accepted_connections(server.log())[0]["kind"] == "ws_connect"
    server.emit("message.new", {"id": "m2", "conversationId": "c1", "content": "#2"}, to=ME)
    result = proc.wait()
    assert result.code == 0, result.err
    connected = [e for e in result.lines if e["type"] == "prismer-rt.connected"]
    assert [e["payload"]["transport"] for e in connected] == ["sse", "ws"]
    assert [e["payload"]["content"] for e in result.lines if e["type"] == "message.new"] == [
        "#1",
        "#2",
    ]
    assert "HTTP 502" in result.err and "connected over sse" in result.err


def test_listen_backs_off_only_when_sse_fails_too(server_factory: ServerFactory) -> None:
    """503 to both (refuse=2:1): SSE is tried right after the upgrade's 503, and only then does
    listen wait, at least the Retry-After, before the next WebSocket."""
    server = server_factory(faults=["refuse=2:1"])
    proc = Background("listen", "--count", "1", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1, timeout=15)
    server.emit("task.updated", {"taskId": "t"}, to=ME)
    assert proc.wait().code == 0
    tried = [r for r in server.log() if r["kind"] in ("refused", "ws_connect", "sse_connect")]
    paths = [r.get("path", "/ws" if r["kind"] == "ws_connect" else "/sse") for r in tried]
    assert [p.startswith("/ws") for p in paths] == [True, False, True]
    times = [r["t"] for r in tried]
    assert times[1] - times[0] < 0.5 and times[2] - times[1] >= 0.95


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_send_falls_back_to_rest_on_502(server_factory: ServerFactory, dialect: str) -> None:
    """send in auto mode behind a 502 to the upgrade: over REST at once, stored, exit 0."""
    server = server_factory(dialect=dialect)
    join(server, "c-rest")
    server.set_faults(["upgrade-status=502"])
    result = run("-v", "send", "c-rest", "hello", env=env_for(server.url, TOKEN), timeout=20)
    assert result.code == 0, result.err
    assert [r["ok"] for r in result.lines] == [True]
    assert [m["content"] for m in server.messages("c-rest")] == ["hello"]
    assert len(ws_refusals(server.log())) == 1
    assert "sending over REST" in result.err


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_a_send_run_again_with_the_users_own_key_never_posts_twice(
    server_factory: ServerFactory, dialect: str
) -> None:
    """`send --idempotency-key K` and a line's own "idempotencyKey", each run twice: stored once.
    The docs dialect's socket command has no field for a key, so such a message goes over REST
    (X-Idempotency-Key) there."""
    server = server_factory(dialect=dialect)
    join(server, "c-key")
    env = env_for(server.url, TOKEN)
    line = json.dumps({"conversationId": "c-key", "content": "from a line", "idempotencyKey": "L1"})
    for _ in range(2):
        one = run("send", "c-key", "once", "--idempotency-key", "K-123", env=env, timeout=20)
        assert one.code == 0, one.err
        lines = run("send", env=env, input=line + "\n", timeout=20)
        assert lines.code == 0, lines.err
        assert [r["ok"] for r in one.lines + lines.lines] == [True, True]
    assert sorted(m["content"] for m in server.messages("c-key")) == ["from a line", "once"]


# ── eviction: more than five connections of one user ─────────────────────


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_evicted_listeners_say_so_once_and_back_off(
    server_factory: ServerFactory, dialect: str
) -> None:
    """Six listeners of one user (the server keeps five): each eviction is said once on
    stderr with its cause, nothing reaches stdout, and the reconnections slow down to the
    backoff's cap instead of evicting each other in a tight loop."""
    server = server_factory(dialect=dialect)
    env = env_for(server.url, TOKEN, PRISMER_RT_BACKOFF_MAX="1")
    procs = [Background("listen", "--timeout", "5", env=env) for _ in range(6)]
    results = [p.wait(timeout=30) for p in procs]
    evicted = [r for r in server.log() if r["kind"] == "evicted"]
    assert evicted  # the sixth connection did evict one
    for result in results:
        assert result.code == 0, result.err
        assert result.out == ""  # the error frame is not an event
        lines = result.err.splitlines()
        assert len(lines) <= 1, lines
        assert all("Connection replaced by newer client" in line for line in lines)
    # Each listener waits 0.05, 0.1, 0.2, 0.4, 0.8, 1 s ... between evictions: in 5 s that is
    # well under 8 reconnections each; a tight loop makes hundreds.
    assert len(evicted) <= 6 * 8, len(evicted)


# ── send: confirmed, re-sent with its key, or reported as uncertain ───────


def lines_for(conv: str, n: int) -> str:
    return "".join(
        json.dumps({"conversationId": conv, "content": f"m{i}"}) + "\n" for i in range(n)
    )


def assert_each_stored_once_or_reported(
    server: ServerProcess, conv: str, n: int, results: list[dict[str, Any]]
) -> None:
    stored = [m["content"] for m in server.messages(conv)]
    assert len(stored) == len(set(stored)), "a message was stored twice"
    assert [r["line"] for r in results] == list(range(1, n + 1))
    for i, result in enumerate(results):
        if result["ok"]:
            assert f"m{i}" in stored or i == -1
        else:
            assert "may or may not have been delivered" in result["error"], result
    missing = {f"m{i}" for i in range(n)} - set(stored)
    reported = {f"m{i}" for i, r in enumerate(results) if not r["ok"]}
    assert missing <= reported


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_send_10000_lines_through_drops(server_factory: ServerFactory, dialect: str) -> None:
    """drop-after=4000: every message stored exactly once, or each missing one reported; the
    server dialect sends the unconfirmed ones again with their keys and says so on stderr."""
    server = server_factory(dialect=dialect)
    join(server, "c-bulk")
    server.set_faults(["drop-after=4000"])
    n = 10_000
    result = run("send", env=env_for(server.url, TOKEN), input=lines_for("c-bulk", n), timeout=120)
    assert "Traceback" not in result.err
    results = result.lines
    assert_each_stored_once_or_reported(server, "c-bulk", n, results)
    assert any(r["kind"] == "fault" for r in server.log())  # it did drop
    uncertain = [r for r in results if not r["ok"]]
    assert result.code == (4 if uncertain else 0), result.err
    stored = len(server.messages("c-bulk"))
    if dialect == "server":
        assert "again on a new connection" in result.err
        assert stored == n and not uncertain  # every one confirmed, none doubled
        keys: dict[str, set[str]] = {}  # the log keeps the latest 10,000 records: enough
        for frame in frames_in(server.log()):  # to see that a content always has one key
            if frame.get("type") == "message.send":
                payload = frame["payload"]
                keys.setdefault(payload["content"], set()).add(
                    payload["metadata"]["_idempotencyKey"]
                )
        assert keys and all(len(k) == 1 for k in keys.values())
    else:  # uncertain ones are never written again (no key in this dialect): never doubled
        assert uncertain and f"{len(uncertain)} command(s) not confirmed" in result.err


def test_docs_send_into_a_silent_server_is_never_ok(server_factory: ServerFactory) -> None:
    """half-open-after=0: the frames are written but nothing is ever read: no "ok": true."""
    server = server_factory(dialect="docs", faults=["half-open-after=0"])
    stdin = lines_for("c-void", 2)
    result = run("send", "--wait", "0.5", env=env_for(server.url, TOKEN), input=stdin, timeout=30)
    assert result.code == 4, result.err
    assert [r["ok"] for r in result.lines] == [False, False]
    assert all("may or may not have been delivered" in r["error"] for r in result.lines)
    assert len(server.messages("c-void")) == 0


def test_docs_send_is_confirmed_by_pongs(server_factory: ServerFactory) -> None:
    """A healthy docs-dialect send: every line ok, one WebSocket ping per batch, not per line."""
    server = server_factory(dialect="docs")
    result = run("send", env=env_for(server.url, TOKEN), input=lines_for("c-ok", 3000))
    assert result.code == 0, result.err
    assert all(r["ok"] and r["sent"] for r in result.lines) and len(result.lines) == 3000
    assert len(server.messages("c-ok")) == 3000


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_send_into_head_still_sends_everything(server_factory: ServerFactory, dialect: str) -> None:
    """`send | head -1`: every line sent and stored, no traceback, the usual exit status."""
    server = server_factory(dialect=dialect)
    join(server, "c-head")
    proc = subprocess.Popen(
        command("send"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(server.url, TOKEN),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(lines_for("c-head", 1).encode())
    proc.stdin.flush()
    first = proc.stdout.readline()  # what `head -1` reads, then it exits
    proc.stdout.close()
    proc.stdin.write(lines_for("c-head", 50).encode()[len(lines_for("c-head", 1)) :])
    proc.stdin.close()
    code = proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert json.loads(first)["ok"] is True
    assert code == 0, err
    assert err == ""
    assert sorted(m["content"] for m in server.messages("c-head")) == sorted(
        f"m{i}" for i in range(50)
    )


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_oversized_line_fails_alone(server_factory: ServerFactory, dialect: str) -> None:
    """A 10 MB line over the server's 1 MiB limit is never written: it fails alone (exit 5),
    the lines around it are sent over the same connection."""
    limit = 2**20
    server = server_factory(dialect=dialect, max_message_bytes=limit)
    join(server, "c-big")
    stdin = "".join(
        json.dumps({"conversationId": "c-big", "content": text}) + "\n"
        for text in ("before", "x" * 10_000_000, "after")
    )
    env = env_for(server.url, TOKEN, PRISMER_RT_MAX_MESSAGE_BYTES=str(limit))
    result = run("send", env=env, input=stdin, timeout=60)
    assert result.code == 5, result.err
    assert [r["ok"] for r in result.lines] == [True, False, True]
    assert "more than the 1048576 bytes the server accepts" in result.lines[1]["error"]
    assert [m["content"] for m in server.messages("c-big")] == ["before", "after"]
    log = server.log()
    assert not [r for r in log if r["kind"] == "oversized"]
    assert len([r for r in log if r["kind"] == "ws_connect"]) == 1 + (dialect == "server")


@pytest.mark.parametrize("dialect", ["docs", "server"])
@pytest.mark.parametrize("told", [True, False])
def test_a_small_message_on_a_long_line_is_sent(
    server_factory: ServerFactory, dialect: str, told: bool
) -> None:
    """Spaces, escapes or a repeated key make these lines longer than the server's limit,
    though their messages are small: each is sent as its message says it (its frame
    serialised, not the line's own bytes), over one connection, and nothing is closed for
    size, whether the client was told the limit or not. A line as serialising writes it,
    keys either way round, goes as its own bytes and says the same."""
    limit = 10_000
    server = server_factory(dialect=dialect, max_message_bytes=limit)
    join(server, "c-sp")
    stdin = (
        b'{"conversationId":"c-sp","content":"before"}\n'
        b'{"conversationId":"c-sp",' + b" " * 20_000 + b'"content":"spaces"}\n'
        b'{"conversationId":"c-sp","content":"' + b"\\u0078" * 2000 + b'"}\n'
        b'{"conversationId":"c-sp","content":"' + b"y" * 20_000 + b'","content":"last"}\n'
        b'{"content":"\\u00e9 \\"q\\"","conversationId":"c-sp"}\n'
        b'{"content":"reversed","conversationId":"c-sp"}\n'
        b'{"conversationId":"c-sp","content":"after"}\n'
    )
    told_env = {"PRISMER_RT_MAX_MESSAGE_BYTES": str(limit)} if told else {}
    env = env_for(server.url, TOKEN, **told_env)
    result = run("send", env=env, input=stdin, timeout=60)
    assert result.code == 0, result.err
    assert [r["ok"] for r in result.lines] == [True] * 7
    contents = [m["content"] for m in server.messages("c-sp")]
    assert contents == ["before", "spaces", "x" * 2000, "last", '\u00e9 "q"', "reversed", "after"]
    log = server.log()
    assert not [r for r in log if r["kind"] == "oversized"]
    assert len([r for r in log if r["kind"] == "ws_connect"]) == 1 + (dialect == "server")


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_a_line_over_a_limit_the_client_does_not_know_fails_alone(
    server_factory: ServerFactory, dialect: str
) -> None:
    """The server takes 1 MB, the client believes 100 MiB: the 10 MB line reaches the server,
    which closes with 1009. That line fails alone (exit 5) and every other line is stored
    once: the close proves the lines before it were read and the ones after it were not."""
    server = server_factory(dialect=dialect, max_message_bytes=1_000_000)
    join(server, "c-big")
    texts = [f"small {i}" for i in range(5)] + ["x" * 10_000_000] + [f"late {i}" for i in range(4)]
    stdin = "".join(json.dumps({"conversationId": "c-big", "content": t}) + "\n" for t in texts)
    result = run("send", env=env_for(server.url, TOKEN), input=stdin, timeout=60)
    assert result.code == 5, result.err
    assert [r["ok"] for r in result.lines] == [True] * 5 + [False] + [True] * 4
    assert "1009, message too big" in result.lines[5]["error"]
    stored = [m["content"] for m in server.messages("c-big")]
    assert sorted(stored) == sorted(t for t in texts if not t.startswith("x"))
