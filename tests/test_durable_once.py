"""A durable listen prints each event once, across a whole run and across runs, with memory that
does not grow with the log (issue 17 items 3, 4 and 5), through the real command against
`prismer-rt serve --dialect server`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import websocket

from tests.support.cli import (
    Background,
    accepted_connections,
    env_for,
    join_conversations,
    run,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.serverfixture import ServerFactory, ServerProcess
from tests.support.slowreader import slowly_read

CONV = "c-once"


def join(server: ServerProcess, *tokens: str) -> None:
    """Make each user a participant of CONV (the server dialect creates it on a join)."""
    for token in tokens:
        join_conversations(server, token, CONV)


def send(server: ServerProcess, prefix: str, n: int) -> None:
    """alice says n numbered lines in CONV, through `prismer-rt send`."""
    lines = "".join(
        json.dumps({"conversationId": CONV, "content": f"{prefix}-{i}"}) + "\n" for i in range(n)
    )
    result = run("send", env=env_for(server.url, "alice"), input=lines, timeout=120)
    assert result.code == 0, result.err[-500:]


@contextmanager
def unacknowledged(server: ServerProcess, expect: int) -> Iterator[None]:
    """bob connected on a raw socket that reads `expect` message frames and acknowledges none:
    when it closes, the server keeps them (the last 100) to send again with isRetry."""
    ws = websocket.create_connection(f"{server.ws_url}/ws?token=bob", timeout=10)
    try:
        assert json.loads(ws.recv())["type"] == "authenticated"
        yield
        got = 0
        while got < expect:
            if json.loads(ws.recv()).get("type") == "message.new":
                got += 1
    finally:
        ws.close()


def ids(out: str) -> list[str]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [line["payload"]["id"] for line in lines if line["type"] == "message.new"]


def contents(out: str) -> list[str]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [line["payload"]["content"] for line in lines if line["type"] == "message.new"]


def listen(server: ServerProcess, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    result = run("listen", *args, env=env_for(server.url, "bob"), timeout=timeout)
    return result.code, result.out, result.err


def test_re_sent_messages_print_once_within_a_run_and_across_runs(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Frames the server sends again (isRetry) of messages the cursor has passed: within one
    `--since all` run whose catch-up is longer than the de-duplication window (10,000 keys),
    and in the next run on the same cursor file."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    join(server, "alice", "bob")
    cursor = str(tmp_path / "bob.cursor")
    with unacknowledged(server, 100):
        send(server, "early", 100)  # bob's raw socket leaves 100 of them to be sent again
    send(server, "late", 10_050)  # more than the window after them
    code, out, err = listen(server, "--cursor-file", cursor, "--since", "all", "--timeout", "3")
    assert code == 0, err
    printed = ids(out)
    assert len(printed) == len(set(printed)) == 10_150
    with unacknowledged(server, 20):
        send(server, "again", 20)
    code, out, err = listen(server, "--cursor-file", cursor, "--no-follow")
    assert code == 0 and contents(out) == [f"again-{i}" for i in range(20)], err
    code, out, err = listen(server, "--cursor-file", cursor, "--timeout", "1.5")
    assert (code, out) == (0, ""), err  # sent again: the cursor has passed them


def test_live_twins_of_a_long_catch_up_print_once(server_factory: ServerFactory) -> None:
    """More than 10,000 messages arrive while the catch-up reads the log (slowed by a slow
    reader of stdout): each comes live too, after the catch-up printed it from the log; the
    keys of what the catch-up printed after the connection opened are all remembered. One
    more message, sent once the catch-up is over, ends the run (--count)."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    join(server, "alice", "bob")
    send(server, "before", 3000)  # the catch-up is still in these when the others come
    args = ("listen", "--since", "all", "--count", "14002", "--timeout", "40")
    with slowly_read(env_for(server.url, "bob"), *args) as (proc, reader):
        wait_until(lambda: reader.lines() >= 5, timeout=10)
        send(server, "during", 11_000)
        wait_until(lambda: reader.lines() >= 14_001, timeout=30)
        send(server, "after", 1)
        assert proc.wait(timeout=20) == 0
    printed = ids(reader.data.decode())
    assert len(printed) == len(set(printed)) == 14_001


class Chatter(threading.Thread):
    """alice posts a message to bob every `every` seconds until stopped."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.stop = threading.Event()
        self.sent: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer alice"
        bob = user_id("bob")
        while not self.stop.is_set():
            content = f"c{len(self.sent)}"
            answer = session.post(
                f"{self.url}/api/im/direct/{bob}/messages", json={"content": content}
            )
            assert answer.status_code == 201
            self.sent.append(content)
            time.sleep(self.every)


def test_a_run_ended_by_timeout_saves_the_exact_cursor(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Messages flow when --timeout comes: the last live events are placed in the log within a
    grace of their own, so the next run prints none of them again, and no warning is said."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    cursor = str(tmp_path / "bob.cursor")
    chatter = Chatter(server.url)
    chatter.start()
    try:
        wait_until(lambda: len(chatter.sent) >= 3)
        code, first, err = listen(
            server, "--cursor-file", cursor, "--since", "all", "--timeout", "2"
        )
        assert code == 0, err
        assert "event log" not in err
    finally:
        chatter.stop.set()
        chatter.join()
    code, second, err = listen(server, "--cursor-file", cursor, "--no-follow")
    assert code == 0, err
    assert contents(first) and not set(contents(first)) & set(contents(second))
    assert contents(first) + contents(second) == chatter.sent


def test_the_cursor_is_saved_during_the_catch_up(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """kill -9 in the middle of a live run's catch-up: the cursor was saved as the catch-up
    went (at most four times a second), so the next run prints again only the last moments."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    join(server, "alice", "bob")
    send(server, "m", 12_000)
    cursor = str(tmp_path / "bob.cursor")
    args = ("listen", "--cursor-file", cursor, "--since", "all")
    with slowly_read(env_for(server.url, "bob"), *args) as (_, reader):
        wait_until(lambda: reader.lines() >= 5000, timeout=30)
    first = ids(reader.data.decode(errors="replace").rsplit("\n", 1)[0])
    code, out, err = listen(server, "--cursor-file", cursor, "--no-follow")
    assert code == 0, err
    again = set(first) & set(ids(out))
    assert set(first) | set(ids(out)) == set(
        ids(listen(server, "--since", "all", "--no-follow")[1])
    )
    assert len(first) >= 5000 and len(again) < len(first) / 2


def test_a_re_run_send_does_not_reprint_what_an_earlier_run_printed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A killed `send` run again with the same idempotency keys makes the server broadcast the
    stored messages again (a new ackId, no isRetry): a durable listen whose cursor passed them
    in an earlier run does not print them again (found by bench/soak.py); a new one prints."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    join(server, "alice", "bob")
    cursor = str(tmp_path / "bob.cursor")
    batch = "".join(
        json.dumps({"conversationId": CONV, "content": f"k-{i}", "idempotencyKey": f"soak-{i}"})
        + "\n"
        for i in range(5)
    )
    alice = env_for(server.url, "alice")
    assert run("send", env=alice, input=batch).code == 0
    code, out, _ = listen(server, "--cursor-file", cursor, "--since", "all", "--no-follow")
    assert code == 0 and contents(out) == [f"k-{i}" for i in range(5)]
    before = len(accepted_connections(server.log()))
    live = Background(
        "listen", "--cursor-file", cursor, "--timeout", "4", env=env_for(server.url, "bob")
    )
    wait_for_connections(server, before + 1)
    again = run("send", env=alice, input=batch)  # the same keys: stored once, broadcast again
    assert again.code == 0 and len(server.messages(CONV)) == 5
    assert run("send", CONV, "fresh", env=alice).code == 0
    result = live.wait()
    assert result.code == 0, result.err
    assert contents(result.out) == ["fresh"]
