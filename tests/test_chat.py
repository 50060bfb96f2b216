"""`chat` through the real command: at a pseudo-terminal (type a line, the server gets it; a
message pushed by the server appears above the input line; Ctrl-D, /quit, Ctrl-C) and as a
two-way pipe, in both dialects, over WebSocket and SSE."""

from __future__ import annotations

import json
import re
import subprocess

import orjson
import pytest
import websocket

from tests.support.cli import Background, accepted_connections, env_for, run, wait_for_connections
from tests.support.serverfixture import ServerProcess
from tests.support.terminal import Terminal


@pytest.fixture
def server(dialect_server: ServerProcess) -> ServerProcess:
    return dialect_server


def bob_says(server: ServerProcess, conversation: str, text: str) -> None:
    """Bob joins the conversation (the server dialect needs it) and says something."""
    stdin = (
        f'{{"action":"subscribe","conversationId":"{conversation}"}}\n'
        f'{{"conversationId":"{conversation}","content":"{text}"}}\n'
    )
    result = run("send", input=stdin, env=env_for(server.url, "bob"))
    assert result.code == 0, result.err


def contents(server: ServerProcess, conversation: str) -> list[str]:
    return [m["content"] for m in server.messages(conversation)]


def chatting(server: ServerProcess, *args: str, columns: int = 80) -> Terminal:
    before = len(accepted_connections(server.log()))
    term = Terminal("chat", *args, env=env_for(server.url, "alice", TERM="xterm"), columns=columns)
    wait_for_connections(server, before + 1)
    term.expect("* connected")
    return term


def test_chat_at_a_terminal(server: ServerProcess) -> None:
    """A typed line is sent; a message from someone else appears above the input line while
    a line is being typed, which is drawn again whole; /help; Ctrl-D ends it with exit 0."""
    conv = "conv-chat-tty"
    term = chatting(server, conv)
    term.type(b"hello from alice\r")
    term.expect("Alice: hello from alice")
    assert contents(server, conv) == ["hello from alice"]
    term.type(b"half typ")
    at = term.expect("> half typ")
    bob_says(server, conv, "from bob")
    after = term.expect("Bob: from bob", after=at)
    term.expect("> half typ", after=after)  # the redraw may come in a read of its own
    assert term.text[after:].rstrip().endswith("> half typ")  # drawn again, unmangled
    term.type(b"ed\r/help\r")
    term.expect("Alice: half typed")
    term.expect("/quit")
    term.type(b"\x04")
    assert term.wait() == 0
    assert contents(server, conv) == ["hello from alice", "from bob", "half typed"]
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} message\.new conv-chat-tty Bob: from bob", term.text)


def test_chat_read_quit_and_interrupt(server: ServerProcess) -> None:
    """/read marks the conversation read, /quit ends with exit 0, Ctrl-C with 130."""
    term = chatting(server, "conv-chat-read")
    term.type(b"/read\r")
    term.expect("confirmed mark_read conv-chat-read")
    term.type(b"/quit\r")
    assert term.wait() == 0
    term = chatting(server, "conv-chat-read")
    term.type(b"\x03")
    assert term.wait() == 130


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_chat_as_a_two_way_pipe(server: ServerProcess, transport: str) -> None:
    """stdin lines go out as messages on the one connection, in order; the conversation's
    events come out as NDJSON; the end of stdin waits for the confirmations, exit 0."""
    conv = f"conv-chat-pipe-{transport}"
    if transport == "sse":  # an SSE stream cannot join: the server dialect needs it done
        joining = f'{{"action":"subscribe","conversationId":"{conv}"}}\n'
        assert run("send", input=joining, env=env_for(server.url, "alice")).code == 0
    before = len(accepted_connections(server.log()))
    proc = Background(
        "chat",
        conv,
        "--transport",
        transport,
        env=env_for(server.url, "alice"),
        stdin=subprocess.PIPE,
    )
    wait_for_connections(server, before + 1)
    assert proc.proc.stdin is not None
    proc.proc.stdin.write(b"one\n\n")
    proc.proc.stdin.flush()
    bob_says(server, conv, "from bob")
    proc.proc.stdin.write(b"two")  # the last line, without a newline
    result = proc.wait()  # closes stdin
    assert result.code == 0, result.err
    assert contents(server, conv)[-3:] == ["one", "from bob", "two"]
    events = [orjson.loads(line) for line in result.out.splitlines()]
    assert all(e["payload"]["conversationId"] == conv for e in events)
    assert "from bob" in [e["payload"].get("content") for e in events]
    assert result.err == ""  # no history on this server: skipped quietly


def test_chat_pipe_in_pretty_and_format(server: ServerProcess) -> None:
    """--pretty and --format apply to a piped chat as to listen."""
    conv = "conv-chat-views"
    pretty = run("chat", conv, "--pretty", input="hi there\n", env=env_for(server.url, "alice"))
    assert pretty.code == 0, pretty.err
    assert re.search(r"\* connected over ws", pretty.out)
    formatted = run(
        "chat",
        conv,
        "--format",
        "{type}: {payload.content}",
        input="again\n",
        env=env_for(server.url, "alice"),
    )
    assert formatted.code == 0 and "message.new: again" in formatted.out.splitlines()


def test_chat_marks_a_line_the_server_refused(server: ServerProcess) -> None:
    """A line that was not confirmed is marked as such at the terminal (here refused: over
    SSE the server dialect cannot join, and the conversation does not exist)."""
    if server.dialect == "docs":
        pytest.skip("the docs dialect creates a conversation on the first message")
    term = chatting(server, "conv-chat-nowhere", "--transport", "sse")
    term.type(b"lost words\r")
    term.expect("failed send_message conv-chat-nowhere line 1: HTTP 404")
    term.type(b"\x04")
    assert term.wait() == 0


def test_chat_shows_the_last_messages_first(server: ServerProcess) -> None:
    """--history N: the conversation's last N messages come first, oldest first, from
    GET /api/im/messages/{id}?limit=N; a server without that endpoint (the docs dialect
    answers 404) is skipped quietly (the pipe test above)."""
    if server.dialect == "docs":
        pytest.skip("the stand-in keeps no such endpoint in the docs dialect")
    conv = "conv-chat-history"
    joining = f'{{"action":"subscribe","conversationId":"{conv}"}}\n'
    assert run("send", input=joining, env=env_for(server.url, "alice")).code == 0
    for text in ("old one", "old two", "old three"):
        bob_says(server, conv, text)
    result = run("chat", conv, "--history", "2", "--pretty", env=env_for(server.url, "alice"))
    assert result.code == 0, result.err
    shown = [line.split(" ", 1)[1] for line in result.out.splitlines()]
    assert shown[1:] == [f"message.new {conv} Bob: old two", f"message.new {conv} Bob: old three"]


def test_a_message_older_than_the_history_shown_is_not_a_new_event(server: ServerProcess) -> None:
    """alice read "old one" on a raw socket that acknowledged nothing, so the server sends it
    again (isRetry) right after her next connection authenticates; chat showed "old two" and
    "old three" as its history, so it is not a new event: only the line sent after is. (The
    line's confirmation is awaited, so the re-delivery, which came first, has been read.)"""
    if server.dialect == "docs":
        pytest.skip("the stand-in keeps no such endpoint in the docs dialect")
    conv = "conv-chat-redelivered"
    joining = f'{{"action":"subscribe","conversationId":"{conv}"}}\n'
    assert run("send", input=joining, env=env_for(server.url, "alice")).code == 0
    ws = websocket.create_connection(f"{server.ws_url}/ws?token=alice", timeout=10)
    try:
        assert json.loads(ws.recv())["type"] == "authenticated"
        bob_says(server, conv, "old one")
        assert json.loads(ws.recv())["payload"]["content"] == "old one"  # not acknowledged
    finally:
        ws.close()
    for text in ("old two", "old three"):
        bob_says(server, conv, text)
    result = run(
        "chat", conv, "--history", "2", input="new one\n", env=env_for(server.url, "alice")
    )
    assert result.code == 0, result.err
    said = [
        line["payload"]["content"]
        for line in map(json.loads, result.out.splitlines())
        if line["type"] == "message.new"
    ]
    assert said == ["old two", "old three", "new one"]
