"""Deadlines that a server trickling bytes cannot defeat (issue 17, item 8), through the real
command: `prismer-rt serve --fault trickle=MS` answers every request one byte at a time and
never finishes, which keeps every per-read socket timeout from tripping; each step (the
upgrade, authentication, each REST call, each page of the event log) must still end by its
deadline, with exit 4 and a message that says so."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.cli import Result, env_for, run
from tests.support.serverfixture import ServerFactory
from tests.support.trickle import AUTH_SUCCESS, TrickleServer

TOKEN = "deadline-token"
SLOW = "the server answers too slowly"


def timed(*args: str, env: dict[str, str]) -> tuple[float, Result]:
    start = time.monotonic()
    result = run(*args, env=env, timeout=30)
    return time.monotonic() - start, result


@pytest.mark.parametrize("transport", ["auto", "ws", "sse"])
def test_listen_timeout_holds_against_a_trickling_server(
    server_factory: ServerFactory, transport: str
) -> None:
    """--timeout 2 while the server answers one byte every 200 ms (a 10 s connect timeout and
    the per-read timeouts never trip): exit 4 at the deadline, whatever the transport."""
    server = server_factory(faults=["trickle=200"])
    env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="10")
    elapsed, result = timed("listen", "--timeout", "2", "--transport", transport, env=env)
    assert result.code == 4, result.err
    assert elapsed < 4.0, result.err
    assert f"no connection to {server.url} within --timeout 2 s: timed out" in result.err
    assert SLOW in result.err and "Traceback" not in result.err


def test_each_connection_attempt_ends_within_the_connect_timeout(
    server_factory: ServerFactory,
) -> None:
    """No --timeout: each attempt (upgrade, then its SSE fallback) ends within the 1 s connect
    timeout, so --max-retries 1 is two attempts, not an endless first one."""
    server = server_factory(faults=["trickle=200"])
    env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="1")
    elapsed, result = timed("listen", "--max-retries", "1", env=env)
    assert result.code == 4, result.err
    assert elapsed < 5.0
    assert "giving up after 1 retries: timed out" in result.err


@pytest.mark.parametrize(
    "args", [("whoami",), ("register", "slow-agent"), ("mark-read", "c1")], ids=lambda a: a[0]
)
def test_one_shot_commands_end_by_the_connect_timeout(
    server_factory: ServerFactory, args: tuple[str, ...]
) -> None:
    server = server_factory(faults=["trickle=200"])
    env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="1", PRISMER_RT_SEND_TIMEOUT="2")
    elapsed, result = timed(*args, env=env)
    assert result.code == 4, result.err
    assert elapsed < 5.0, result.err
    assert "timed out" in result.err and SLOW in result.err
    assert "Traceback" not in result.err


def test_send_ends_by_its_overall_bound(server_factory: ServerFactory) -> None:
    """send c1 x: each attempt (upgrade, REST) is a step of at most the connect timeout, and
    the whole is bounded by PRISMER_RT_SEND_TIMEOUT: one result line, exit 4."""
    server = server_factory(faults=["trickle=200"])
    env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="1", PRISMER_RT_SEND_TIMEOUT="2")
    elapsed, result = timed("send", "c1", "x", env=env)
    assert result.code == 4, result.err
    assert elapsed < 5.0, result.err
    (line,) = result.lines
    assert line["ok"] is False and "timed out" in line["error"]


def test_a_trickled_authentication_frame_ends_at_the_deadline() -> None:
    """The upgrade is answered at once, then the first frame comes a byte at a time."""
    with TrickleServer(frames=[]) as server:
        env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="10")
        elapsed, result = timed("listen", "--timeout", "2", "--transport", "ws", env=env)
    assert result.code == 4, result.err
    assert elapsed < 4.0
    assert "timed out: the authentication frame took more than" in result.err


def test_a_trickled_live_frame_ends_at_the_deadline() -> None:
    """Authenticated, then a frame whose bytes trickle in: --timeout still ends the run (exit
    0, nothing printed), though bytes keep coming and the frame never completes."""
    with TrickleServer(frames=[AUTH_SUCCESS]) as server:
        env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="10")
        elapsed, result = timed("listen", "--timeout", "2", "--transport", "ws", env=env)
        assert server.trickled > 0
    assert result.code == 0, result.err
    assert elapsed < 4.0
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "connect"),
    [(("--timeout", "2"), "10"), ((), "1")],
    ids=["timeout", "connect-timeout"],
)
def test_a_trickled_page_of_the_event_log_ends_by_its_deadline(
    server_factory: ServerFactory, args: tuple[str, ...], connect: str
) -> None:
    """--no-follow reads the event log: each page ends by --timeout and within the connect
    timeout, answer included."""
    server = server_factory(faults=["trickle=200"])
    env = env_for(server.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT=connect)
    elapsed, result = timed("listen", "--since", "all", "--no-follow", *args, env=env)
    assert result.code == 4, result.err
    assert elapsed < 4.0, result.err
    assert "cannot read the event log: timed out: a page of the event log took more" in result.err


def test_a_token_refresh_due_before_listen_connects_counts_inside_timeout(
    server_factory: ServerFactory,
) -> None:
    """Issue 18: the refresh of a token that is due runs inside --timeout's clock, bounded by
    what is left of it; it ran first, for up to the connect timeout, and only then did the
    clock start."""
    server = server_factory(token_ttl=4)
    body = {"type": "agent", "username": "refresher", "displayName": "refresher"}
    answer = requests.post(server.url + "/api/im/register", json=body, timeout=5)
    token = answer.json()["data"]["token"]
    time.sleep(2.2)  # past half of its 4 s lifetime: due, not expired
    server.set_faults(["trickle=200"])
    env = env_for(server.url, token, PRISMER_RT_CONNECT_TIMEOUT="6")
    elapsed, result = timed("listen", "--timeout", "2", "-v", env=env)
    assert "cannot refresh the token yet" in result.err
    assert result.code == 4, result.err
    assert elapsed < 4.0, result.err
