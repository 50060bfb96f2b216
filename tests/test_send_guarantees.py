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
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import cli
from tests.support.cli import env_for, run
from tests.support.serverfixture import ServerFactory, ServerProcess

TOKEN = "guarantees-token"


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


# ── 17.6: keys in the results, and a retry file that finishes the job ────


def join(server: ServerProcess, *convs: str) -> None:
    cli.join_conversations(server, TOKEN, *convs)


def interrupted(
    server: ServerProcess, args: list[str], stdin: Path, *, seen: int, signum: int, keep_open: bool
) -> tuple[int, list[dict[str, Any]], str]:
    """`prismer-rt ARGS < STDIN` (stdin left open after it, with `keep_open`), sent `signum`
    once the server has seen `seen` connections in all and 0.3 s more: (status, results, err)."""
    with stdin.open("rb") as data:
        proc = subprocess.Popen(
            cli.command(*args),
            stdin=subprocess.PIPE if keep_open else data,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env_for(server.url, TOKEN),
        )
        try:
            if proc.stdin is not None:
                proc.stdin.write(data.read())
                proc.stdin.flush()
            cli.wait_until(lambda: len(cli.accepted_connections(server.log())) >= seen)
            time.sleep(0.3)  # written, now waiting for the server
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err.decode()


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_every_message_result_carries_its_own_key(
    server_factory: ServerFactory, dialect: str
) -> None:
    """Two identical lines are two messages, each with its key in its result; a line's own key
    is the one in its result."""
    server = server_factory(dialect=dialect)
    if dialect == "server":
        join(server, "c-keys")
    same = json.dumps({"conversationId": "c-keys", "content": "twice"}) + "\n"
    own = json.dumps({"conversationId": "c-keys", "content": "own", "idempotencyKey": "K-7"})
    result = run("send", env=env_for(server.url, TOKEN), input=same + same + own + "\n")
    assert result.code == 0, result.err
    keys = [r["idempotencyKey"] for r in result.lines]
    assert keys[2] == "K-7" and keys[0] != keys[1] and all(keys)
    assert sorted(stored_once(server, "c-keys").items()) == [("own", 1), ("twice", 2)]


def test_retry_file_finishes_the_job_without_posting_twice(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The server goes silent after 300 echoes (half-open-after): messages it stored but did
    not confirm are uncertain (--wait 1), and those behind them in their conversation are not
    sent; all go to the retry file with their keys. `send < FILE` on the mended server confirms
    them all and stores none a second time, though some were stored by the first run."""
    server = server_factory(dialect="server")
    convs = [f"c-retry-{i}" for i in range(100)]
    join(server, *convs)
    n = 1000
    stdin = "".join(
        json.dumps({"conversationId": convs[i % 100], "content": f"m{i}"}) + "\n" for i in range(n)
    )
    retry = tmp_path / "again.ndjson"
    env = env_for(server.url, TOKEN)
    server.set_faults(["half-open-after=300"])
    first = run("send", "--wait", "1", "--retry-file", str(retry), env=env, input=stdin, timeout=60)
    server.set_faults([])
    assert first.code == 4, first.err
    not_ok = [r for r in first.lines if not r["ok"]]
    uncertain = [r for r in not_ok if "may or may not have been delivered" in r["error"]]
    assert uncertain and all(r in uncertain or r["error"].startswith("not sent") for r in not_ok)
    stored_first = {c for conv in convs for c in stored_once(server, conv)}
    assert {f"m{r['line'] - 1}" for r in uncertain} & stored_first  # what keys are for
    lines = [json.loads(line) for line in retry.read_text().splitlines()]
    assert [line["idempotencyKey"] for line in lines] == [r["idempotencyKey"] for r in not_ok]
    assert [line["content"] for line in lines] == [f"m{r['line'] - 1}" for r in not_ok]
    again = run("send", "--retry-file", str(retry), env=env, input=retry.read_bytes())
    assert again.code == 0, again.err
    assert len(again.lines) == len(not_ok) and all(r["ok"] for r in again.lines)
    assert retry.read_text() == ""  # nothing left to do
    stored: Counter[str] = Counter()
    for conv in convs:
        stored += stored_once(server, conv)
    assert sorted(stored) == sorted(f"m{i}" for i in range(n))
    assert set(stored.values()) == {1}, [c for c, k in stored.items() if k > 1][:5]


def test_retry_file_keeps_interrupted_commands_and_leaves_out_rejected_ones(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A message the server rejected (not a participant) would fail again: not in the file. A
    message awaiting its echo at SIGTERM is: the file replaces FILE even when FILE is stdin."""
    server = server_factory(dialect="server")
    join(server, "c-mine")
    retry = tmp_path / "again.ndjson"
    env = env_for(server.url, TOKEN)
    refused = json.dumps({"conversationId": "c-not-mine", "content": "refused"}) + "\n"
    result = run(
        "send", "--retry-file", str(retry), env=env, input=refused + lines_for("c-mine", 1)
    )
    assert result.code == 5, result.err
    assert [r["ok"] for r in result.lines] == [False, True]
    assert retry.read_text() == ""

    pending = {"conversationId": "c-mine", "content": "pending", "idempotencyKey": "P-1"}
    retry.write_text(json.dumps(pending) + "\n")
    server.set_faults(["half-open-after=0"])  # nothing read, no echo will ever come
    args = ["send", "--retry-file", str(retry)]
    code, results, err = interrupted(
        server, args, retry, seen=3, signum=signal.SIGTERM, keep_open=False
    )  # seen: join's, the first run's, this one's
    server.set_faults([])
    assert code == 143, err
    [line] = results
    assert line["ok"] is False and "interrupted" in line["error"]
    assert [json.loads(line) for line in retry.read_text().splitlines()] == [
        {**pending, "type": "text"}
    ]


def test_retry_file_that_cannot_be_written_is_refused_before_sending(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(dialect="docs")
    bad = {
        "": "the path is empty",
        str(tmp_path): "is a directory",
        str(tmp_path / "no" / "such" / "folder" / "f"): "No such file or directory",
    }
    for path, reason in bad.items():
        result = run(
            "send", "--retry-file", path, env=env_for(server.url, TOKEN), input=lines_for("c", 1)
        )
        assert result.code == 2, result.err
        assert "--retry-file" in result.err and reason in result.err, result.err
        assert "Traceback" not in result.err
    assert server.messages("c") == []


@pytest.mark.parametrize("stdin_open", [False, True])
def test_docs_send_interrupted_waits_for_nothing(
    server_factory: ServerFactory, tmp_path: Path, stdin_open: bool
) -> None:
    """Ctrl-C while a silent server has not confirmed (--wait 60): the program ends at once
    (exit 130), every line reported uncertain, whether stdin had ended or not."""
    server = server_factory(dialect="docs", faults=["half-open-after=0"])
    lines = tmp_path / "lines.ndjson"
    lines.write_text(lines_for("c-int", 3))
    args = ["send", "--wait", "60"]
    code, results, err = interrupted(
        server, args, lines, seen=1, signum=signal.SIGINT, keep_open=stdin_open
    )
    assert code == 130, err
    assert [r["ok"] for r in results] == [False] * 3
    assert all("may or may not have been delivered" in r["error"] for r in results)


# ── 18.1: order per conversation on a server that handles frames concurrently ──


@pytest.mark.parametrize("n", [50, 1000])
def test_lines_to_one_conversation_are_stored_and_broadcast_in_input_order(
    server_factory: ServerFactory, n: int
) -> None:
    """`serve --fault concurrent-handling` handles each message.send after a random 0-5 ms
    delay, as the real server does: pipelined sends to one conversation race. `send` writes a
    conversation's next line only once the previous one is confirmed, so the stored order and
    the order a listener sees are the input order."""
    server = server_factory(dialect="server", faults=["concurrent-handling"])
    join(server, "c-order")
    env = env_for(server.url, TOKEN)
    listener = cli.Background(
        "listen", "--conversation", "c-order", "--count", str(n), "--timeout", "60", env=env
    )
    cli.wait_for_connections(server, 2)  # join's, the listener's
    result = run("send", env=env, input=lines_for("c-order", n), timeout=120)
    assert result.code == 0, result.err[-2000:]
    assert len(result.lines) == n and all(r["ok"] for r in result.lines)
    expected = [f"m{i}" for i in range(n)]
    assert [m["content"] for m in server.messages("c-order")] == expected
    heard = listener.wait(timeout=60)
    assert heard.code == 0, heard.err
    assert [e["payload"]["content"] for e in heard.lines] == expected


def test_conversations_still_pipeline_each_in_its_own_order(server_factory: ServerFactory) -> None:
    """1,000 lines over 100 conversations, with concurrent handling: each conversation stored in
    input order, while the first line of every conversation went out before any confirmation
    came back (one unconfirmed message per conversation, not one in all)."""
    server = server_factory(dialect="server", faults=["concurrent-handling"])
    convs = [f"c-many-{i}" for i in range(100)]
    join(server, *convs)
    n = 1000
    stdin = "".join(
        json.dumps({"conversationId": convs[i % 100], "content": f"m{i}"}) + "\n" for i in range(n)
    )
    result = run("send", env=env_for(server.url, TOKEN), input=stdin, timeout=120)
    assert result.code == 0, result.err[-2000:]
    assert all(r["ok"] for r in result.lines) and len(result.lines) == n
    for k, conv in enumerate(convs):
        assert [m["content"] for m in server.messages(conv)] == [f"m{i}" for i in range(k, n, 100)]
    sender = max(r["conn"] for r in server.log() if r["kind"] == "ws_connect")
    frames = [f["type"] for f in cli.frames_in(server.log(), sender)]
    assert frames[:100] == ["message.send"] * 100  # no ack between them: none was confirmed
    assert frames.count("message.send") == n
