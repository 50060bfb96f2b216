"""The WebSocket connection object against the local server: behaviour the command's output
cannot show."""

from __future__ import annotations

import threading
import time

from prismer_cli.errors import ConnectionLost
from prismer_cli.transport import Endpoint, Resume, Timeouts, open_websocket
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
