"""The upgrade of a plain ws:// URL, made by hand (transport/wsupgrade.py) instead of by
websocket-client: the same request, however the answer arrives, and what is not the plain case
(a redirect, a proxy in the environment) still handed to websocket-client. The real command
against the stand-in server, through a relay that keeps the request (tests/support/relay.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import websocket

from prismer_cli.transport.wsupgrade import Target, target
from tests.support.cli import Result, env_for, run
from tests.support.relay import FixedAnswer, Relay
from tests.support.serverfixture import ServerProcess, running_server

IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("wsupgrade"), dialect="docs") as started:
        yield started


def sent(result: Result) -> bool:
    return result.code == 0 and [line["ok"] for line in result.lines] == [True]


def websocket_client_loaded(result: Result) -> bool:
    names = set(IMPORTED.findall(result.err))
    assert "prismer_cli.transport.wssocket" in names, result.err[-2000:]
    return "websocket" in names


def keyless(request: bytes) -> list[str]:
    """The request's lines, the random Sec-WebSocket-Key masked."""
    text = re.sub(r"(?m)^Sec-WebSocket-Key: \S+", "Sec-WebSocket-Key: *", request.decode())
    return text.split("\r\n")


def test_the_request_is_the_one_websocket_client_writes(server: ServerProcess) -> None:
    with Relay(server.port) as relay:
        result = run("send", "conv_upgrade", "hello", env=env_for(relay.url))
        assert sent(result), result.err
        ws = websocket.create_connection(f"{relay.ws_url}/ws?token=alice", timeout=5)
        ws.close()
        ours, theirs = relay.requests
    assert keyless(ours) == keyless(theirs)
    assert keyless(ours)[0] == "GET /ws?token=alice HTTP/1.1"


@pytest.mark.parametrize("answer", ["bytewise", "together"])
def test_the_answer_may_come_a_byte_at_a_time_or_with_the_first_frame(
    server: ServerProcess, answer: str
) -> None:
    """Split anywhere, or with the server's first frame right behind it in one read: the
    headers are read up to their end and the frame is left to the frame reader."""
    with Relay(server.port, answer=answer) as relay:
        result = run("send", "conv_upgrade", "hello", env=env_for(relay.url))
    assert sent(result), result.err


def test_a_plain_url_does_not_load_websocket_client(server: ServerProcess) -> None:
    result = run("send", "conv_upgrade", "hi", env=env_for(server.url, PYTHONPROFILEIMPORTTIME="1"))
    assert sent(result), result.err
    assert not websocket_client_loaded(result)


def test_a_redirect_of_the_upgrade_is_followed_by_websocket_client(server: ServerProcess) -> None:
    moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {server.ws_url}/ws?token=alice\r\n\r\n"
    with FixedAnswer(moved.encode()) as redirecting:
        env = env_for(redirecting.url, PYTHONPROFILEIMPORTTIME="1")
        result = run("send", "conv_upgrade", "moved", env=env)
    assert sent(result), result.err
    assert websocket_client_loaded(result)


def test_a_proxy_in_the_environment_is_websocket_clients_business(server: ServerProcess) -> None:
    """http_proxy set: websocket-client decides (here: no_proxy names the host, so it connects
    directly; without no_proxy it would go through the proxy)."""
    env = env_for(
        server.url,
        PYTHONPROFILEIMPORTTIME="1",
        http_proxy="http://127.0.0.1:9",
        no_proxy="127.0.0.1",
        NO_PROXY="127.0.0.1",
    )
    result = run("send", "conv_upgrade", "direct", env=env)
    assert sent(result), result.err
    assert websocket_client_loaded(result)


def test_a_wrong_accept_key_is_refused_as_websocket_client_refuses_it() -> None:
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n"
    )
    with FixedAnswer(answer) as wrong:
        result = run("send", "conv_upgrade", "x", "--transport", "ws", env=env_for(wrong.url))
    assert result.code == 4, result.err
    assert "Invalid WebSocket Header" in result.err


def test_only_the_plain_case_is_upgraded_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """wss://, a proxy in the environment, a name the IDNA codec would change or refuse, a port
    that does not parse: websocket-client's (transport/wssocket.py)."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    url = "ws://127.0.0.1:8/ws?token=t"
    assert target(url) == Target(url, "127.0.0.1", 8, "/ws?token=t")
    assert target("ws://Host.Example")[1:] == ("host.example", 80, "/")  # type: ignore[index]
    assert target("ws://[::1]:9/ws")[1:3] == ("::1", 9)  # type: ignore[index]
    for other in ("wss://h/ws", "ws://bücher.example/ws", "ws://a..b/ws", "ws://h:99999/ws"):
        assert target(other) is None, other
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert target(url) is None
