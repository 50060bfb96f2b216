"""The WebSocket connection object against the local server: behaviour the command's output
cannot show."""

from __future__ import annotations

import io
import threading
import time

import pytest

from prismer_cli import send
from prismer_cli.errors import ConnectionLost, ExitStatus
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.commands import SEND, Command
from prismer_cli.send import reader
from prismer_cli.transport import Endpoint, Resume, Timeouts, open_websocket
from tests.support.cli import join_conversations
from tests.support.serverfixture import ServerFactory


def test_waiting_for_input_leaves_the_write_timeout_alone(server_factory: ServerFactory) -> None:
    """A reader thread polling with short deadlines must not shorten the socket timeout that
    the main thread's writes use (on a slow link a write would fail after a few ms)."""
    server = server_factory(dialect="server")
    timeouts = Timeouts(ping_interval=15.0, ping_timeout=10.0)
    conn = open_websocket(Endpoint(server.url, "tok", timeouts=timeouts), Resume())
    try:
        stall = conn._sock.gettimeout()  # type: ignore[attr-defined]
        assert stall == 25.0

        def reader() -> None:
            for _ in range(20):
                for _data in conn.messages(time.monotonic() + 0.01):
                    pass

        thread = threading.Thread(target=reader)
        thread.start()
        while thread.is_alive():
            assert conn._sock.gettimeout() == stall  # type: ignore[attr-defined]
            conn.send({"type": "ping", "payload": {}, "requestId": "prt-t"})
            time.sleep(0.005)
        thread.join()
    finally:
        conn.close()


def test_abort_wakes_a_blocked_reader(server_factory: ServerFactory) -> None:
    """abort() from another thread ends a read that is waiting for input, at once."""
    server = server_factory(dialect="docs")
    conn = open_websocket(Endpoint(server.url, "tok"), Resume())
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _data in conn.messages(time.monotonic() + 30):
                pass
        except ConnectionLost as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    start = time.monotonic()
    conn.abort()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 2
    assert errors


def test_wake_ends_a_wait_for_input_as_its_deadline_would(server_factory: ServerFactory) -> None:
    """wake() from another thread makes messages() return at once, quietly, as at its deadline
    (send's reader thread is told so that the writer is done); a wake that comes before the
    wait is not lost; the connection is still usable afterwards."""
    server = server_factory(dialect="docs")
    conn = open_websocket(Endpoint(server.url, "tok"), Resume())
    conn.enable_wake()  # type: ignore[attr-defined]
    outcome: list[object] = []

    def wait_long() -> None:
        try:
            outcome.append(list(conn.messages(time.monotonic() + 60)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome.append(exc)

    try:
        for woken_first in (False, True):
            outcome.clear()
            if woken_first:
                conn.wake()  # type: ignore[attr-defined]
            thread = threading.Thread(target=wait_long)
            thread.start()
            if not woken_first:
                time.sleep(0.2)
                conn.wake()  # type: ignore[attr-defined]
            thread.join(10)
            assert not thread.is_alive() and outcome == [[]]
        conn.send({"action": "subscribe", "conversationId": "c-wake"})
    finally:
        conn.close()
    assert conn.closed_cleanly  # type: ignore[attr-defined]


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_a_one_shot_send_ends_without_waiting_for_the_readers_tick(
    server_factory: ServerFactory, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the last command is confirmed (echo) or written (docs), the reader thread stops at
    once: with its polling tick made a minute long, a one-shot send still ends in seconds."""
    monkeypatch.setattr(reader, "TICK", 60.0)
    server = server_factory(dialect=dialect)
    if dialect == "server":
        join_conversations(server, "tok", "c-tick")
    out = io.BytesIO()
    command = Command(SEND, "c-tick", "hello", "text", key=f"key-tick-{dialect}")
    status: list[ExitStatus] = []
    options = send.SendOptions(wait=5.0)

    def one_shot() -> None:
        endpoint = Endpoint(server.url, "tok")
        status.append(
            send.run(endpoint, [[command]], Output(out), Log(stream=io.StringIO()), options)
        )

    thread = threading.Thread(target=one_shot, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "send waited for the reader's tick"
    assert status == [ExitStatus.OK] and b'"ok":true' in out.getvalue()
