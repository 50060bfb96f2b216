"""--trace through the real command: the wire on stderr, both dialects, WebSocket, SSE and
REST, and never the token, whatever the command or the failure."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.support import cli
from tests.support.cli import Background, env_for, run
from tests.support.serverfixture import ServerProcess

TOKEN = "sekrit-tok-4242"
AT = r"^\d\d:\d\d:\d\d\.\d\d\d "


SERVER_TOKENS = [TOKEN]


@pytest.fixture
def server(dialect_server: ServerProcess) -> ServerProcess:
    return dialect_server


def has(text: str, pattern: str) -> bool:
    return re.search(AT + pattern, text, re.M) is not None


def joined(server: ServerProcess, conversation: str, token: str = TOKEN) -> None:
    stdin = f'{{"action":"subscribe","conversationId":"{conversation}"}}\n'
    assert run("send", input=stdin, env=env_for(server.url, token)).code == 0


def test_trace_shows_the_websocket_wire(server: ServerProcess) -> None:
    """The upgrade's request and status lines and headers, the auth frame, every frame out
    and in (the docs dialect's ping and pong, the server dialect's acks); stdout unchanged."""
    conv = "conv-trace-ws"
    joined(server, conv)
    result = run("send", conv, "hello", "--trace", env=env_for(server.url, TOKEN))
    assert result.code == 0, result.err
    assert orjson.loads(result.out)["ok"] is True
    err = result.err
    assert has(err, r"> GET /ws\?token=\*\*\* HTTP/1\.1$")
    assert has(err, r"< HTTP/1\.1 101 Switching Protocols$")
    assert has(err, r"< (?i:upgrade): websocket$")
    auth = "auth_success" if server.dialect == "docs" else "authenticated"
    assert has(err, rf'< text {{"type":"{auth}"')
    assert has(err, r"> text .*hello")
    if server.dialect == "docs":
        assert has(err, r"> ping prt-sync-\d+$") and has(err, r"< pong prt-sync-\d+$")
    else:
        assert has(err, r'< text {"type":"message.new".*"ackId"')
        assert has(err, r'> text {"type":"ack"')
    assert has(err, r"> close 1000$") and has(err, r"< close 1000")
    assert TOKEN not in result.out + err


def test_trace_shows_sse_events_and_rest_requests(server: ServerProcess) -> None:
    """Over SSE: the stream's request and answer, each event with its id (docs dialect);
    sending without a WebSocket: each REST request with method, path, status and duration."""
    conv = "conv-trace-sse"
    joined(server, conv)
    before = len(cli.accepted_connections(server.log()))
    args = ("listen", "--transport", "sse", "--count", "1", "--type", "message.new", "--trace")
    proc = Background(*args, env=env_for(server.url, TOKEN))
    cli.wait_for_connections(server, before + 1)
    sent = run(
        "send", conv, "over rest", "--transport", "sse", "--trace", env=env_for(server.url, TOKEN)
    )
    listened = proc.wait()
    assert sent.code == 0 and listened.code == 0, sent.err + listened.err
    path = f"/api/im/messages/{conv}"
    assert has(
        sent.err,
        rf'> POST {path} X-Idempotency-Key: \S+ {{"type": "text", "content": "over rest"}}',
    )
    assert has(sent.err, rf"< 201 Created POST {path} \(\d+ ms\) {{")
    stream = "/api/im/events/stream" if server.dialect == "docs" else "/sse"
    assert has(listened.err, rf"> GET {stream}\?token=\*\*\*")
    assert has(listened.err, rf"< 200 OK GET {stream}\?token=\*\*\* \(\d+ ms\)$")
    if server.dialect == "docs":
        assert has(listened.err, r'< sse id:\d+ event:message.new {.*"over rest"')
    else:
        assert has(listened.err, r'< sse {"type":"message.new".*"over rest"')
    assert TOKEN not in sent.out + sent.err + listened.out + listened.err


def test_trace_cuts_a_long_frame_with_its_size(server: ServerProcess) -> None:
    """A frame over 2,000 characters is cut, and its full size said."""
    before = len(cli.accepted_connections(server.log()))
    args = ("listen", "--count", "1", "--type", "custom.big", "--trace")
    proc = Background(*args, env=env_for(server.url, TOKEN))
    cli.wait_for_connections(server, before + 1)
    server.emit("custom.big", {"text": "y" * 5000}, to=cli.user_id(TOKEN))
    result = proc.wait()
    line = next(x for x in result.err.splitlines() if "custom.big" in x)
    assert re.search(r"y… \(cut: 50\d\d characters in all\)$", line), line
    assert len(line) < 2100 and len(result.out) > 5000  # stdout is whole


def _no_token(results: list[cli.Result], *tokens: str) -> None:
    for result in results:
        for token in tokens:
            assert token not in result.out and token not in result.err, result.err


def test_no_token_in_any_trace(server_factory: Any, tmp_path: Path) -> None:
    """Every command with --trace, succeeding and failing, over every transport: the token is
    never on stdout or stderr (URLs, headers, frames, register and refresh answers)."""
    server = server_factory(dialect="server", token_ttl=2)
    strict = server_factory(dialect="docs", tokens=["alice=Alice"])
    env = env_for(server.url, TOKEN)
    joined = run("send", "--trace", input='{"action":"subscribe","conversationId":"ct"}\n', env=env)
    bad = env_for(strict.url, TOKEN)
    commands = [  # at once: each is a process of its own
        (("send", "ct", "hi"), env),
        (("mark-read", "ct"), env),
        (("listen", "--since", "all", "--no-follow"), env),
        (("subscribe", "ct", "--timeout", "0.5"), env),
        (("whoami",), env),
        (("config", "show"), env),
        (("chat", "ct"), env),
        # failures: refused token over WebSocket, SSE and REST; nobody listening
        (("listen", "--timeout", "2"), bad),
        (("listen", "--transport", "sse"), bad),
        (("send", "c", "x", "--transport", "sse"), bad),
        (("whoami",), bad),
        (("listen", "--max-retries", "0"), env_for("http://127.0.0.1:9", TOKEN)),
    ]
    procs = [Background(*args, "--trace", env=e) for args, e in commands]
    # register's answer, then a refresh of the 2-second token it gave
    home = tmp_path / "config"
    registered = run(
        "register",
        "trace-user",
        "--trace",
        env=env_for(server.url, None, XDG_CONFIG_HOME=str(home)),
    )
    assert registered.code == 0, registered.err
    token_file = home / "prismer-rt" / "token"
    first = token_file.read_text().strip()
    time.sleep(1.2)  # past half its lifetime: due
    listened = run(
        "listen",
        "--trace",
        "--timeout",
        "0.5",
        env=env_for(server.url, None, XDG_CONFIG_HOME=str(home)),
    )
    second = token_file.read_text().strip()
    assert second != first and has(listened.err, r"> POST /api/im/token/refresh$")
    assert has(registered.err, r'< 201 Created POST /api/im/register .*"token":"\*\*\*"')
    _no_token([registered, listened], first, second)
    assert requests.get(
        server.url + "/api/im/me", headers={"Authorization": f"Bearer {second}"}, timeout=5
    ).ok
    results = [joined, *(proc.wait() for proc in procs)]
    assert [r.code for r in results[-5:]] == [3, 3, 3, 3, 4]
    assert all(has(r.err, "[<>*] ") for r in results if r is not results[6])  # not config
    _no_token(results, TOKEN)
