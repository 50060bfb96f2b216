"""Resilience through the real command: SSE fallback, reconnection with backoff, keepalive,
and each fault the local server can inject (one server per test, faults from its start)."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.cli import (
    Background,
    accepted_connections,
    env_for,
    frames_in,
    run,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.serverfixture import ServerFactory, ServerProcess

TOKEN = "resilient-token"
ME = user_id(TOKEN)


def attempts(server: ServerProcess) -> list[dict]:
    """Every connection attempt the server saw, refused ones included, in order."""
    return [
        r
        for r in server.log()
        if r["kind"] in ("ws_connect", "sse_connect") or (r["kind"] == "refused")
    ]


def message(server: ServerProcess, n: int, conversation: str = "c-r") -> None:
    server.emit(
        "message.new", {"id": f"m{n}", "conversationId": conversation, "content": f"#{n}"}, to=ME
    )


def after_fault(server: ServerProcess, fault: str) -> None:
    """Wait until the server has applied a fault once, then clear the faults, so that the
    next connection is a healthy one (re-sent frames would otherwise trip it again)."""
    wait_until(lambda: any(r.get("fault") == fault for r in server.log() if r["kind"] == "fault"))
    server.set_faults([])


def contents(lines: list[dict]) -> list[str]:
    return [e["payload"]["content"] for e in lines if e["type"] == "message.new"]


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_falls_back_to_sse_when_websocket_is_refused(
    server_factory: ServerFactory, dialect: str
) -> None:
    """A proxy refusing the upgrade: SSE within a few seconds, the same lines, said with -v."""
    server = server_factory(dialect=dialect, faults=["no-websocket"])
    start = time.monotonic()
    proc = Background("-v", "listen", "--count", "2", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    assert time.monotonic() - start < 5
    message(server, 1)
    message(server, 2)
    result = proc.wait()
    assert result.code == 0, result.err
    assert contents(result.lines) == ["#1", "#2"]
    assert "falling back to Server-Sent Events" in result.err
    assert accepted_connections(server.log())[0]["kind"] == "sse_connect"


def test_transport_ws_does_not_fall_back(server_factory: ServerFactory) -> None:
    """--transport ws with no WebSocket to be had: exit 4, no SSE attempt."""
    server = server_factory(faults=["no-websocket"])
    result = run("listen", "--transport", "ws", "--no-reconnect", env=env_for(server.url, TOKEN))
    assert result.code == 4
    assert not [r for r in server.log() if r["kind"] == "sse_connect"]


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_reconnects_after_abrupt_drop_and_subscribes_again(
    server_factory: ServerFactory, dialect: str
) -> None:
    """After a drop (no close frame) the listener reconnects, re-subscribes before reading,
    and prints every event once."""
    server = server_factory(dialect=dialect, faults=["drop-after=2"])
    proc = Background("subscribe", "c-r", "--count", "4", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    time.sleep(0.2)
    message(server, 1)
    message(server, 2)  # the server aborts the connection after this one
    after_fault(server, "drop-after")
    wait_for_connections(server, 2)
    second = accepted_connections(server.log())[1]["conn"]
    wait_until(lambda: frames_in(server.log(), second))
    message(server, 3)
    message(server, 4)
    result = proc.wait()
    assert result.code == 0, result.err
    assert contents(result.lines) == ["#1", "#2", "#3", "#4"]
    resent = frames_in(server.log(), second)
    if dialect == "docs":
        assert resent[0] == {"action": "subscribe", "conversationId": "c-r"}
    else:
        assert resent[0]["type"] == "conversation.join"
        assert resent[0]["payload"] == {"conversationId": "c-r"}
        assert any(f["type"] == "reconnect" and "lastEventTime" in f["payload"] for f in resent)


def test_backoff_delays_grow_and_are_capped(server_factory: ServerFactory) -> None:
    """Measured from the server: delays start near the initial value, grow, stop at the cap.
    (--transport ws: in auto mode each 503 is followed at once by an SSE try.)"""
    server = server_factory(faults=["refuse=7"])
    env = env_for(server.url, TOKEN, PRISMER_RT_BACKOFF_INITIAL="0.1", PRISMER_RT_BACKOFF_MAX="0.4")
    proc = Background("listen", "--transport", "ws", "--count", "1", env=env)
    wait_for_connections(server, 1, timeout=15)
    message(server, 1)
    assert proc.wait().code == 0
    times = [r["t"] for r in attempts(server)]
    assert len(times) == 8  # 7 refused, then the one that worked
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.05 <= gaps[0] < 0.25  # [initial/2, initial] plus start-up noise
    assert gaps[2] >= 0.2  # third retry: at least 0.4/2 — it grew
    assert all(g < 0.4 + 0.25 for g in gaps)  # never above the cap (plus noise)
    assert sum(gaps[3:]) / len(gaps[3:]) >= 0.2  # at the cap: in [cap/2, cap]


def test_max_retries_gives_n_plus_1_attempts(server_factory: ServerFactory) -> None:
    """--max-retries 2: exactly three attempts, then exit 4."""
    server = server_factory(faults=["refuse=10"])
    result = run(
        "listen", "--transport", "ws", "--max-retries", "2", env=env_for(server.url, TOKEN)
    )
    assert result.code == 4
    assert "giving up after 2 retries" in result.err
    assert len(attempts(server)) == 3


def test_no_reconnect_exits_4_when_the_connection_is_lost(server_factory: ServerFactory) -> None:
    """--no-reconnect: a lost connection ends the program with exit 4, after what arrived."""
    server = server_factory(faults=["drop-after=1"])
    proc = Background("listen", "--no-reconnect", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    message(server, 1)
    result = proc.wait()
    assert result.code == 4
    assert contents(result.lines) == ["#1"]
    assert len(accepted_connections(server.log())) == 1


def test_unreachable_server_exits_4(server_factory: ServerFactory) -> None:
    """Nothing listening and --no-reconnect: exit 4 with a one-line error."""
    server = server_factory()
    url = server.url
    server.stop()
    result = run("listen", "--no-reconnect", env=env_for(url, TOKEN))
    assert result.code == 4
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


def test_first_connection_waits_out_503_and_retry_after(server_factory: ServerFactory) -> None:
    """Started while the server is busy (503, Retry-After: 1), listen keeps trying, honouring it."""
    server = server_factory(faults=["refuse=2:1"])
    proc = Background("listen", "--transport", "ws", "--count", "1", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1, timeout=15)
    message(server, 1)
    assert proc.wait().code == 0
    times = [r["t"] for r in attempts(server)]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95


def test_429_retry_after_is_honoured(server_factory: ServerFactory) -> None:
    """A 429 with Retry-After: 1 delays the next attempt by at least a second."""
    server = server_factory(faults=["rate-limit=1:1"])
    proc = Background("listen", "--transport", "ws", "--count", "1", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1, timeout=15)
    message(server, 1)
    assert proc.wait().code == 0
    times = [r["t"] for r in attempts(server)]
    assert times[1] - times[0] >= 0.95


def test_sse_resumes_with_last_event_id(server_factory: ServerFactory) -> None:
    """Docs SSE: after a drop, Last-Event-ID brings back what was missed; nothing doubled."""
    server = server_factory(faults=["drop-after=2"])
    proc = Background(
        "listen", "--transport", "sse", "--count", "4", env=env_for(server.url, TOKEN)
    )
    wait_for_connections(server, 1)
    message(server, 1)
    message(server, 2)  # the stream is cut after this one
    after_fault(server, "drop-after")
    message(server, 3)  # sent while the client is away
    wait_for_connections(server, 2)
    message(server, 4)
    result = proc.wait()
    assert result.code == 0, result.err
    assert contents(result.lines) == ["#1", "#2", "#3", "#4"]
    second = accepted_connections(server.log())[1]
    assert second["headers"].get("Last-Event-ID")


def test_server_dialect_sse_drop_prints_resent_frames_once(server_factory: ServerFactory) -> None:
    """Server SSE cannot ack, so the server re-sends (isRetry) after a reconnect: printed once."""
    server = server_factory(dialect="server", faults=["drop-after=2"])
    proc = Background(
        "listen", "--transport", "sse", "--count", "3", env=env_for(server.url, TOKEN)
    )
    wait_for_connections(server, 1)
    message(server, 1)
    message(server, 2)
    after_fault(server, "drop-after")
    wait_for_connections(server, 2)
    time.sleep(0.3)
    message(server, 3)
    result = proc.wait()
    assert result.code == 0, result.err
    assert contents(result.lines) == ["#1", "#2", "#3"]


@pytest.mark.parametrize(
    ("transport", "knobs"),
    [
        ("ws", {"PRISMER_RT_PING_INTERVAL": "0.3", "PRISMER_RT_PING_TIMEOUT": "0.3"}),
        ("sse", {"PRISMER_RT_SSE_SILENCE": "0.6"}),
    ],
)
def test_half_open_connection_is_detected(
    server_factory: ServerFactory, transport: str, knobs: dict[str, str]
) -> None:
    """A peer gone silent without a FIN is noticed by keepalive; the listener reconnects."""
    server = server_factory(faults=["half-open-after=1"])
    env = env_for(server.url, TOKEN, **knobs)
    proc = Background("-v", "listen", "--transport", transport, "--count", "2", env=env)
    wait_for_connections(server, 1)
    message(server, 1)  # then the server goes silent
    start = time.monotonic()
    wait_for_connections(server, 2, timeout=10)
    assert time.monotonic() - start < 5
    server.set_faults([])
    message(server, 2)
    result = proc.wait()
    assert result.code == 0, result.err
    assert "#2" in contents(result.lines)


def test_server_dialect_acks_every_ackid(server_factory: ServerFactory) -> None:
    """Each frame with an ackId is acknowledged; nothing is re-sent to the next connection."""
    server = server_factory(dialect="server", ack_timeout=0.5)
    proc = Background("listen", "--count", "3", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    for n in (1, 2, 3):
        message(server, n)
    result = proc.wait()
    assert result.code == 0
    acked = {f["payload"]["ackId"] for f in frames_in(server.log()) if f.get("type") == "ack"}
    assert acked == {e["ackId"] for e in result.lines}
    again = run("listen", "--timeout", "1", env=env_for(server.url, TOKEN))
    assert again.out == ""  # no isRetry re-delivery: everything was acknowledged


def test_server_dialect_unacked_frames_come_back_once(server_factory: ServerFactory) -> None:
    """Frames re-sent with isRetry after a drop (never acked in time) are printed once."""
    server = server_factory(dialect="server", faults=["half-open-after=2"], ack_timeout=0.3)
    env = env_for(server.url, TOKEN, PRISMER_RT_PING_INTERVAL="0.3", PRISMER_RT_PING_TIMEOUT="0.3")
    proc = Background("listen", "--count", "3", env=env)
    wait_for_connections(server, 1)
    message(server, 1)
    message(server, 2)
    wait_for_connections(server, 2, timeout=10)
    server.set_faults([])
    message(server, 3)
    result = proc.wait()
    assert result.code == 0, result.err
    assert contents(result.lines) == ["#1", "#2", "#3"]


def test_timeout_bounds_a_connection_attempt_that_hangs() -> None:
    """--timeout holds even while the server accepts TCP but never answers the upgrade; having
    never connected, listen exits 4."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts or answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        result = run("listen", "--timeout", "1", "--count", "1", env=env_for(url, TOKEN))
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert result.code == 4  # never connected is a failure (issue 11), not a timeout
    assert elapsed < 4


def test_server_dialect_keepalive_uses_the_protocol_ping(server_factory: ServerFactory) -> None:
    """On a quiet line the server dialect also gets the protocol's own ping (with a requestId);
    its pong is consumed, not printed."""
    server = server_factory(dialect="server")
    env = env_for(server.url, TOKEN, PRISMER_RT_PING_INTERVAL="0.2")
    result = run("listen", "--timeout", "1.2", env=env)
    assert result.code == 0, result.err
    assert result.out == ""
    pings = [f for f in frames_in(server.log()) if f.get("type") == "ping"]
    assert pings and all(f["requestId"].startswith("prt-") for f in pings)
