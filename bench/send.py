"""Send sections: JSON lines on stdin through `prismer-rt send` over one connection.

- Docs dialect, one conversation, beside websocat: the server reads and counts the frames
  (`token=discard`); `send` confirms its batches with pings and the clean close.
- Server dialect, one conversation: every `message.send` is echoed as the real server does
  (`token=echo`, bench/echo.py), and `send` writes a conversation's next message only after
  the previous one's echo (per-conversation order), so this figure is a round trip per message.
- Server dialect, the same lines spread over 100 conversations, beside websocat writing the
  same `message.send` frames (it waits for nothing): there `send` can pipeline.

A run only counts if the server received every command; in the server dialect also each
message once (by its idempotency key) and each conversation's messages in input order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from environment import WEBSOCAT_MISSING
from harness import Bench, Row, Sample, log, rate_sample, run_client

CONTENT = b"bench message %06d: the quick brown fox jumps over the lazy dog"
MANY = 100  # conversations of the spread run
Case = tuple[Row, list[str], dict[str, str], Path]  # a row, its command, env, stdin


def bench_send(bench: Bench) -> None:
    docs_dialect(bench)
    one_conversation(bench)
    many_conversations(bench)


def lines_file(path: Path, n: int, conversations: int) -> Path:
    """n JSON lines {"conversationId","content"}, round robin over `conversations`."""
    with path.open("wb") as f:
        for i in range(n):
            conv = b"c" if conversations == 1 else b"c%03d" % (i % conversations)
            f.write(b'{"conversationId":"%s","content":"%s"}\n' % (conv, CONTENT % i))
    return path


def frames_file(path: Path, n: int, conversations: int) -> Path:
    """The server dialect's message.send frames for the same lines, one per line, each with an
    idempotency key, as `prismer-rt send` writes them (what websocat sends as they are)."""
    with path.open("wb") as f:
        for i in range(n):
            conv = b"c%03d" % (i % conversations)
            f.write(
                b'{"type":"message.send","payload":{"conversationId":"%s","content":"%s",'
                b'"type":"text","metadata":{"_idempotencyKey":"bench-%d"}},"requestId":"r%d"}\n'
                % (conv, CONTENT % i, i, i)
            )
    return path


def docs_dialect(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n = s.send_lines
    path = lines_file(bench.tmp / f"commands-{n}.ndjson", n, 1)
    cases: list[Case] = [
        (
            r.row("send", "send.prismer", "prismer-rt send < commands.ndjson", "cmds/s"),
            [t.prismer_rt, "send"],
            bench.prismer_env("discard"),
            path,
        )
    ]
    label = "websocat -t < commands.ndjson"
    if t.websocat:
        cmd = [t.websocat, "-t", bench.url("ws", "/ws", "discard")]
        cases.append((r.row("send", "send.websocat", label, "cmds/s"), cmd, bench.env, path))
    else:
        r.skip("send", "send.websocat", label, "cmds/s", WEBSOCAT_MISSING)
    complete = round_robin(bench, cases, n, received)
    bench.results.checks["send.complete"] = {
        "ok": complete,
        "detail": f"the server received all {n} commands in every run"
        if complete
        else "some commands did not reach the server",
    }


def one_conversation(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n = s.send_one_lines
    path = lines_file(bench.tmp / f"one-conversation-{n}.ndjson", n, 1)
    label = f"prismer-rt send --dialect server < one-conversation.ndjson ({n:,} lines)"
    cases: list[Case] = [
        (
            r.row("send.one", "send.one.prismer", label, "cmds/s"),
            [t.prismer_rt, "--dialect", "server", "send"],
            bench.prismer_env("echo"),
            path,
        )
    ]
    complete = round_robin(bench, cases, n, received_once_in_order)
    bench.results.checks["send.one.complete"] = in_order_check(complete, n, 1)


def many_conversations(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n = s.send_lines
    path = lines_file(bench.tmp / f"conversations-{n}.ndjson", n, MANY)
    cases: list[Case] = [
        (
            r.row(
                "send.many",
                "send.many.prismer",
                f"prismer-rt send --dialect server < {MANY}-conversations.ndjson",
                "cmds/s",
            ),
            [t.prismer_rt, "--dialect", "server", "send"],
            bench.prismer_env("echo"),
            path,
        )
    ]
    label = f"websocat -t < {MANY}-conversations.frames (the same message.send frames)"
    if t.websocat:
        frames = frames_file(bench.tmp / f"conversations-{n}.frames", n, MANY)
        cmd = [t.websocat, "-t", bench.url("ws", "/ws", "echo")]
        cases.append(
            (r.row("send.many", "send.many.websocat", label, "cmds/s"), cmd, bench.env, frames)
        )
    else:
        r.skip("send.many", "send.many.websocat", label, "cmds/s", WEBSOCAT_MISSING)
    complete = round_robin(bench, cases, n, received_once_in_order)
    bench.results.checks["send.many.complete"] = in_order_check(complete, n, MANY)


def received(sample: Sample, n: int) -> str:
    """Why the run does not count ("" if it does): every command reached the server."""
    if sample.frames_in != n:
        return f"the server received {sample.frames_in} of {n} commands"
    return ""


def received_once_in_order(sample: Sample, n: int) -> str:
    """... and, in the server dialect, each message once and each conversation in order."""
    if sample.frames_in != n:
        return f"the server received {sample.frames_in} of {n} messages"
    keys = sum(c.get("keys", 0) for c in sample.conns)
    if keys != n:
        return f"{n - keys} of {n} messages were sent twice (or without an idempotency key)"
    disorder = sum(c.get("disorder", 0) for c in sample.conns)
    if disorder:
        return f"{disorder} messages arrived before an earlier one of their conversation"
    return ""


def in_order_check(complete: bool, n: int, conversations: int) -> dict[str, object]:
    where = "one conversation" if conversations == 1 else f"{conversations} conversations"
    return {
        "ok": complete,
        "detail": f"the server received all {n} messages ({where}) in every run, each once, "
        "each conversation in input order"
        if complete
        else "some messages did not reach the server, came twice or out of order",
    }


def round_robin(
    bench: Bench, cases: list[Case], n: int, counts: Callable[[Sample, int], str]
) -> bool:
    """Run every case once per round; True if every run of prismer-rt counted."""
    s, complete = bench.s, True
    for i in range(s.runs):
        for row, cmd, cmd_env, path in cases:
            with path.open("rb") as stdin:
                sample = run_client(
                    bench.live, cmd, cmd_env, stdin=stdin, timeout=max(120.0, n / 1_000)
                )
            why = counts(sample, n) if sample.ok else ""
            if why:
                sample.ok = False
                sample.error = why
            if row.key.endswith(".prismer") and not sample.ok:
                complete = False
            rate_sample(row, sample, n)
            shown = f"{n / sample.elapsed:,.0f}/s" if sample.ok else f"error {sample.error}"
            busy = sum(c.get("busy_ns", 0) for c in sample.conns) / 1e9
            if busy and sample.ok:  # the echo server's share of the run
                row.extra.setdefault("server_busy", []).append(busy / sample.elapsed)
                shown += f" (server busy {busy / sample.elapsed:.0%})"
            log(f"    run {i + 1}/{s.runs} {row.label}: {shown}")
    return complete
