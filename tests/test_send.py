"""send and mark-read through the real command against the local server, in both dialects.

Every test checks what the server saw (``/_control/log``, or what it stored), not only what the
command printed. The dialect is left on auto: the servers decide it. Each test is its own user
(a fresh token) on its own conversations, so the module's servers can be shared.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import websocket

from prismer_cli.server.users import user_id_for_token
from tests.support.cli import Result, command, env_for, run
from tests.support.serverfixture import ServerProcess, start_server

DIALECTS = ("docs", "server")
HTTP = 5.0


# ── servers shared by the module ─────────────────────────────────────────


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One open-mode server per dialect (any token is a user of its own)."""
    started: dict[str, ServerProcess] = {}
    try:
        for dialect in DIALECTS:
            home = tmp_path_factory.mktemp(f"send-{dialect}")
            started[dialect] = start_server(home, dialect=dialect)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=DIALECTS)
def server(request: pytest.FixtureRequest, servers: dict[str, ServerProcess]) -> ServerProcess:
    return servers[request.param]


@pytest.fixture
def srv(servers: dict[str, ServerProcess]) -> ServerProcess:
    """The server dialect only."""
    return servers["server"]


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One server per dialect that accepts only the token ``good-token-0123456789``."""
    started: dict[str, ServerProcess] = {}
    try:
        for dialect in DIALECTS:
            home = tmp_path_factory.mktemp(f"locked-{dialect}")
            started[dialect] = start_server(home, dialect=dialect, tokens=["good-token-0123456789"])
        yield started
    finally:
        for server in started.values():
            server.stop()


# ── helpers ──────────────────────────────────────────────────────────────


def new_conv() -> str:
    return "conv_" + uuid.uuid4().hex[:12]


def lines_of(*objects: Any) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def assert_clean(result: Result, token: str) -> None:
    """No token and no traceback anywhere in what the command wrote."""
    assert token not in result.out, result.out
    assert token not in result.err, result.err
    assert "Traceback" not in result.err, result.err


def run_all(jobs: list[tuple[list[str], dict[str, str], str | None]]) -> list[Result]:
    """Run independent commands at the same time (they share no state); results in order."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [
            pool.submit(run, *args, env=env, input=stdin, timeout=30) for args, env, stdin in jobs
        ]
        return [f.result() for f in futures]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Client:
    """One user (a fresh token) of one server: runs the command, reads what the server saw."""

    def __init__(self, server: ServerProcess, token: str | None = None) -> None:
        self.server = server
        self.token = token or "sekrit-" + uuid.uuid4().hex
        self.user = user_id_for_token(self.token)
        self.mark = -1.0
        self.reset()

    @property
    def dialect(self) -> str:
        return self.server.dialect

    def reset(self) -> None:
        """From now on: what the server sees after this moment."""
        records = self.server.log()
        self.mark = records[-1]["t"] if records else -1.0

    def run(self, *args: str, input: str | bytes | None = None, timeout: float = 30) -> Result:
        result = run(*args, env=env_for(self.server.url, self.token), input=input, timeout=timeout)
        assert_clean(result, self.token)
        return result

    def log(self) -> list[dict[str, Any]]:
        return [r for r in self.server.log() if r["t"] > self.mark]

    def connects(self) -> list[dict[str, Any]]:
        return [r for r in self.log() if r["kind"] == "ws_connect" and r.get("user") == self.user]

    def frames(self) -> list[dict[str, Any]]:
        """The commands the server received from this user (acks and pings left out)."""
        return [
            r["frame"]
            for r in self.log()
            if r["kind"] == "ws_frame_in"
            and r.get("user") == self.user
            and "frame" in r
            and not (isinstance(r["frame"], dict) and r["frame"].get("type") in ("ack", "ping"))
        ]

    def rest(self, path: str) -> list[dict[str, Any]]:
        """REST requests (and requests turned away by a fault) to exactly this path."""
        return [r for r in self.log() if r["kind"] in ("rest", "refused") and r["path"] == path]

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stored(self, conv: str) -> list[dict[str, Any]]:
        """The messages the server stored in a conversation, oldest first."""
        answer = requests.get(
            self.server.url + "/api/im/sync?since=0&limit=500",
            headers=self._headers(),
            timeout=HTTP,
        )
        answer.raise_for_status()
        events = answer.json()["data"]["events"]
        return [
            e["data"] for e in events if e["conversationId"] == conv and e["type"] == "message.new"
        ]

    def unread(self, conv: str) -> int:
        answer = requests.get(
            self.server.url + "/api/im/conversations?withUnread=true",
            headers=self._headers(),
            timeout=HTTP,
        )
        answer.raise_for_status()
        counts = [c["unreadCount"] for c in answer.json()["data"] if c["id"] == conv]
        assert counts, f"{conv} is not one of the user's conversations"
        return int(counts[0])

    def post(self, conv: str, content: str) -> dict[str, Any]:
        """Post a message over REST (test set-up, not the command under test)."""
        answer = requests.post(
            self.server.url + f"/api/im/messages/{conv}",
            json={"content": content},
            headers=self._headers(),
            timeout=HTTP,
        )
        assert answer.status_code == 201, answer.text
        message: dict[str, Any] = answer.json()["data"]["message"]
        return message

    def join(self, *convs: str) -> None:
        """Make the user a participant of each conversation over a raw WebSocket (set-up)."""
        ws = websocket.create_connection(
            self.server.ws_url + "/ws?token=" + self.token, timeout=HTTP
        )
        try:
            ws.recv()  # the authentication frame
            if self.dialect == "server":
                for conv in convs:
                    frame = {"type": "conversation.join", "payload": {"conversationId": conv}}
                    ws.send(json.dumps(frame))
                ws.send(json.dumps({"type": "ping", "payload": {}, "requestId": "sync"}))
                answer = "pong"
            else:
                for conv in convs:
                    ws.send(json.dumps({"action": "subscribe", "conversationId": conv}))
                ws.send("{}")  # answered with an error frame: everything before it is done
                answer = "error"
            while json.loads(ws.recv()).get("type") != answer:
                pass
        finally:
            ws.close()
        self.reset()


@pytest.fixture
def client(server: ServerProcess) -> Client:
    return Client(server)


def sent_messages(client: Client) -> list[dict[str, Any]]:
    """What the server saw of each message command, in one shape for both dialects."""
    shown = []
    for frame in client.frames():
        if frame.get("action") == "send_message":
            shown.append({k: frame.get(k) for k in ("conversationId", "content", "type")})
        elif frame.get("type") == "message.send":
            payload = frame["payload"]
            shown.append({k: payload.get(k) for k in ("conversationId", "content", "type")})
    return shown


def msg(conv: str, content: str, kind: str = "text") -> dict[str, str]:
    return {"conversationId": conv, "content": content, "type": kind}


# ── send C "text" ────────────────────────────────────────────────────────


def test_send_argument_is_one_message(client: Client) -> None:
    """`send C "text"` prints one ok result and the server stores exactly that message."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    result = client.run("send", conv, "hello, world")
    assert result.code == 0, result.err
    [line] = result.lines
    assert line["ok"] is True
    assert line["conversationId"] == conv
    [stored] = client.stored(conv)
    assert (stored["content"], stored["type"], stored["senderId"]) == (
        "hello, world",
        "text",
        client.user,
    )
    assert len(client.connects()) == 1
    if client.dialect == "docs":
        assert line["sent"] is True
        # the page's fields, exactly
        assert client.frames() == [{"action": "send_message", **msg(conv, "hello, world")}]
    else:
        assert line["message"]["id"] == stored["id"]  # the server's echo confirmed it
        assert line["message"]["content"] == "hello, world"
        [frame] = client.frames()
        assert frame["type"] == "message.send"
        key = frame["payload"]["metadata"]["_idempotencyKey"]  # the real server's de-duplication
        assert frame["payload"] == {
            **msg(conv, "hello, world"),
            "metadata": {"_idempotencyKey": key},
        }
        assert len(key) >= 24 and json.loads(stored["metadata"])["_idempotencyKey"] == key
        assert line["message"]["metadata"]["_idempotencyKey"] == key  # confirmed by its key
        assert frame["requestId"] == line["requestId"]


@pytest.mark.parametrize("dash", [False, True], ids=["no-content", "dash"])
def test_send_stdin_is_one_message(client: Client, dash: bool) -> None:
    """`send C` and `send C -` send all of stdin as one message, one trailing newline removed."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    text = 'first line\n\n  {"not": "a command"}\nlast line\n\n'
    args = ["send", conv, *(["-"] if dash else []), "--type", "markdown"]
    result = client.run(*args, input=text)
    assert result.code == 0, result.err
    [line] = result.lines
    assert line["ok"] is True
    expected = text[:-1]
    assert sent_messages(client) == [msg(conv, expected, "markdown")]
    [stored] = client.stored(conv)
    assert (stored["content"], stored["type"]) == (expected, "markdown")


def test_send_empty_stdin_is_a_usage_error(client: Client) -> None:
    """`send C` with nothing on stdin sends nothing and exits 2."""
    conv = new_conv()
    result = client.run("send", conv, input="")
    assert result.code == 2
    assert result.out == ""
    assert client.frames() == []


# ── send with JSON lines ─────────────────────────────────────────────────


def test_json_lines_go_over_one_connection_in_order(client: Client) -> None:
    """Several commands of one stdin: one connection, sent in order, one result each in order."""
    conv, other = new_conv(), new_conv()
    if client.dialect == "server":
        client.join(other)
    seed = client.post(other, "something to mark read")
    client.reset()
    stdin = lines_of(
        {"action": "subscribe", "conversationId": conv},
        {"conversationId": conv, "content": "one"},
        "",
        "   ",
        {"action": "send_message", "conversationId": conv, "content": "two", "type": "markdown"},
        {"action": "mark_read", "conversationId": other, "upToMessageId": seed["id"]},
        {"conversationId": conv, "content": "three"},
    )
    result = client.run("send", input=stdin)
    assert result.code == 0, result.err
    lines = result.lines
    assert [(r["ok"], r["action"], r["line"]) for r in lines] == [
        (True, "subscribe", 1),
        (True, "send_message", 2),
        (True, "send_message", 5),
        (True, "mark_read", 6),
        (True, "send_message", 7),
    ]
    assert len(client.connects()) == 1
    assert sent_messages(client) == [
        msg(conv, "one"),
        msg(conv, "two", "markdown"),
        msg(conv, "three"),
    ]
    assert [s["content"] for s in client.stored(conv)] == ["one", "two", "three"]
    frames = client.frames()
    if client.dialect == "docs":
        assert frames == [
            {"action": "subscribe", "conversationId": conv},
            {"action": "send_message", **msg(conv, "one")},
            {"action": "send_message", **msg(conv, "two", "markdown")},
            {"action": "mark_read", "conversationId": other, "upToMessageId": seed["id"]},
            {"action": "send_message", **msg(conv, "three")},
        ]
    else:
        assert [f["type"] for f in frames] == ["conversation.join", *["message.send"] * 3]
        assert frames[0]["payload"] == {"conversationId": conv}
        for record, frame in zip(lines[1:3] + lines[4:], frames[1:], strict=True):
            assert record["message"]["content"] == frame["payload"]["content"]
            assert record["requestId"] == frame["requestId"]
        # mark_read goes over REST in this dialect, between "two" and "three"
        log = client.log()
        [read] = [r for r in log if r["kind"] == "rest" and r["path"].endswith("/read")]
        assert read["path"] == f"/api/im/conversations/{other}/read"
        assert read["status"] == 200
        sends = [
            r["t"]
            for r in log
            if r["kind"] == "ws_frame_in" and r.get("frame", {}).get("type") == "message.send"
        ]
        assert sends[1] < read["t"] < sends[2], "mark_read was not sent in its place"


def test_invalid_lines_are_reported_and_the_rest_is_sent(client: Client) -> None:
    """Invalid stdin lines: each named on stderr with its number and given its own result line
    in input order (issue 11), the valid ones sent, exit 6."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    stdin = lines_of(
        {"conversationId": conv, "content": "first"},  # 1
        "this is not json",  # 2
        [{"conversationId": conv, "content": "in an array"}],  # 3
        {"conversationId": conv},  # 4: no content
        {"conversationId": conv, "content": ""},  # 5: empty content
        {"action": "dance", "conversationId": conv},  # 6: unknown action
        {"content": "no conversation"},  # 7
        {"conversationId": conv, "content": "bad metadata", "metadata": [1]},  # 8
        {"conversationId": conv, "content": "bad parent", "parentId": 5},  # 9
        {"conversationId": conv, "content": "second"},  # 10
    )
    result = client.run("send", input=stdin)
    assert result.code == 6, result.err
    assert [(r["ok"], r["line"]) for r in result.lines] == [
        (True, 1),
        *[(False, n) for n in range(2, 10)],
        (True, 10),
    ]
    assert all(set(r) == {"ok", "line", "error"} for r in result.lines[1:-1])
    for number in range(2, 10):
        assert f"line {number}:" in result.err, result.err
    assert "line 1:" not in result.err and "line 10:" not in result.err
    assert sent_messages(client) == [msg(conv, "first"), msg(conv, "second")]
    assert [s["content"] for s in client.stored(conv)] == ["first", "second"]


def test_rejected_command_fails_alone(srv: ServerProcess) -> None:
    """Server dialect: a refused message gets ok:false with the error, the others ok; exit 5."""
    client = Client(srv)
    conv, missing = new_conv(), new_conv()
    client.join(conv)
    stdin = lines_of(
        {"conversationId": conv, "content": "before"},
        {"conversationId": missing, "content": "nobody is there"},
        {"conversationId": conv, "content": "after"},
    )
    result = client.run("send", input=stdin)
    assert result.code == 5, result.err
    first, refused, last = result.lines
    assert first["ok"] is True and last["ok"] is True
    assert (first["message"]["content"], last["message"]["content"]) == ("before", "after")
    assert refused["ok"] is False
    assert refused["code"] == "INTERNAL"
    assert refused["error"]
    assert refused["conversationId"] == missing
    [frame] = [f for f in client.frames() if f["payload"].get("conversationId") == missing]
    assert refused["requestId"] == frame["requestId"]
    assert [s["content"] for s in client.stored(conv)] == ["before", "after"]


def test_type_option_applies_to_json_lines(client: Client) -> None:
    """`send --type T` sets the type of the JSON lines that do not give one."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    stdin = lines_of(
        {"conversationId": conv, "content": "plain"},
        {"conversationId": conv, "content": "own type", "type": "text"},
    )
    result = client.run("send", "--type", "markdown", input=stdin)
    assert result.code == 0, result.err
    assert sent_messages(client) == [msg(conv, "plain", "markdown"), msg(conv, "own type")]
    assert [s["type"] for s in client.stored(conv)] == ["markdown", "text"]


def test_forbidden_rest_command_is_rejected_not_auth(srv: ServerProcess) -> None:
    """Server dialect: a 403 for one REST command (not a participant) rejects only it: exit 5."""
    alice, bob = Client(srv), Client(srv)
    theirs, mine = new_conv(), new_conv()
    bob.join(theirs)
    alice.join(mine)
    stdin = lines_of({"conversationId": theirs}, {"conversationId": mine})
    result = alice.run("mark-read", input=stdin)
    assert result.code == 5, result.err
    refused, done = result.lines
    assert (refused["ok"], done["ok"]) == (False, True)
    assert "403" in refused["error"]
    assert "token" not in result.err
    reads = [(r["path"], r["status"]) for r in alice.log() if r["kind"] == "rest"]
    assert reads == [
        (f"/api/im/conversations/{theirs}/read", 403),
        (f"/api/im/conversations/{mine}/read", 200),
    ]
    stdin = lines_of(
        {"conversationId": theirs, "content": "x"}, {"conversationId": mine, "content": "y"}
    )
    result = alice.run("send", "--transport", "sse", input=stdin)
    assert result.code == 5, result.err
    assert [r["ok"] for r in result.lines] == [False, True]
    assert [s["content"] for s in alice.stored(mine)] == ["y"]


# ── mark-read ────────────────────────────────────────────────────────────


def two_users_and_one_unread(server: ServerProcess) -> tuple[Client, str, str]:
    """alice and bob in a new conversation; bob posted one message alice has not read."""
    alice, bob = Client(server), Client(server)
    conv = new_conv()
    alice.join(conv)
    bob.join(conv)
    message = bob.post(conv, "read me")
    assert alice.unread(conv) == 1
    alice.reset()
    return alice, conv, message["id"]


def test_mark_read_with_message_id(server: ServerProcess) -> None:
    """`mark-read C M`: docs sends the page's mark_read frame, server POSTs .../read."""
    alice, conv, message_id = two_users_and_one_unread(server)
    result = alice.run("mark-read", conv, message_id)
    assert result.code == 0, result.err
    [line] = result.lines
    assert (line["ok"], line["action"], line["conversationId"]) == (True, "mark_read", conv)
    if server.dialect == "docs":
        assert alice.frames() == [
            {"action": "mark_read", "conversationId": conv, "upToMessageId": message_id}
        ]
    else:
        [read] = alice.rest(f"/api/im/conversations/{conv}/read")
        assert (read["method"], read["status"]) == ("POST", 200)
    assert alice.unread(conv) == 0  # read with alice's token, not anyone else's


def test_mark_read_without_message_id(server: ServerProcess) -> None:
    """`mark-read C` marks everything read and sends no field the page does not have."""
    alice, conv, _ = two_users_and_one_unread(server)
    result = alice.run("mark-read", conv)
    assert result.code == 0, result.err
    [line] = result.lines
    assert line["ok"] is True
    for frame in alice.frames():
        assert None not in frame.values(), frame  # no "upToMessageId": null
    assert alice.unread(conv) == 0


def test_mark_read_from_stdin(server: ServerProcess) -> None:
    """`mark-read` reads {"conversationId", "upToMessageId"} lines; one result each, in order."""
    alice, conv, message_id = two_users_and_one_unread(server)
    bob = Client(server)
    other = new_conv()
    alice.join(other)
    bob.join(other)
    second = bob.post(other, "read me too")
    alice.reset()
    stdin = lines_of(
        {"conversationId": conv, "upToMessageId": message_id},
        "",
        {"conversationId": other, "upToMessageId": second["id"]},
    )
    result = alice.run("mark-read", input=stdin)
    assert result.code == 0, result.err
    assert [(r["ok"], r["conversationId"], r["line"]) for r in result.lines] == [
        (True, conv, 1),
        (True, other, 3),
    ]
    if server.dialect == "docs":
        assert alice.frames() == [
            {"action": "mark_read", "conversationId": conv, "upToMessageId": message_id},
            {"action": "mark_read", "conversationId": other, "upToMessageId": second["id"]},
        ]
        assert len(alice.connects()) == 1
    else:
        reads = [r["path"] for r in alice.log() if r["kind"] == "rest"]
        assert reads == [
            f"/api/im/conversations/{conv}/read",
            f"/api/im/conversations/{other}/read",
        ]
    assert (alice.unread(conv), alice.unread(other)) == (0, 0)


# ── REST fallback ────────────────────────────────────────────────────────


def assert_posted_over_rest(client: Client, conv: str, contents: list[str], result: Result) -> None:
    posts = [r for r in client.rest(f"/api/im/messages/{conv}") if r["kind"] == "rest"]
    assert [p["status"] for p in posts] == [201] * len(contents)
    keys = [p["headers"].get("X-Idempotency-Key") for p in posts]
    assert all(keys) and len(set(keys)) == len(keys), keys
    assert client.frames() == []
    stored = client.stored(conv)
    assert [s["content"] for s in stored] == contents
    assert [r["ok"] for r in result.lines] == [True] * len(contents)
    assert [r["message"]["id"] for r in result.lines] == [s["id"] for s in stored]


def test_transport_sse_sends_over_rest(client: Client) -> None:
    """`--transport sse`: messages go over POST /api/im/messages/C, each with its own key."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    stdin = lines_of(
        {"conversationId": conv, "content": "a"}, {"conversationId": conv, "content": "b"}
    )
    result = client.run("send", "--transport", "sse", input=stdin)
    assert result.code == 0, result.err
    assert_posted_over_rest(client, conv, ["a", "b"], result)
    assert client.connects() == []


def test_no_websocket_falls_back_to_rest(client: Client) -> None:
    """`--transport auto` behind a proxy that refuses WebSockets: the messages go over REST."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    client.server.set_faults(["no-websocket"])
    try:
        stdin = lines_of(
            {"conversationId": conv, "content": "a"}, {"conversationId": conv, "content": "b"}
        )
        result = client.run("send", input=stdin)
    finally:
        client.server.set_faults([])
    assert result.code == 0, result.err
    refused = [r for r in client.log() if r["kind"] == "refused"]
    assert refused and refused[0]["fault"] == "no-websocket"
    assert_posted_over_rest(client, conv, ["a", "b"], result)


def test_retried_rest_post_keeps_its_key(client: Client) -> None:
    """A REST post answered 429 is retried with the same idempotency key and stored once."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    client.server.set_faults(["rate-limit=2:0"])
    try:
        stdin = lines_of(
            {"conversationId": conv, "content": "once"},
            {"conversationId": conv, "content": "twice"},
        )
        result = client.run("send", "--transport", "sse", input=stdin)
    finally:
        client.server.set_faults([])
    assert result.code == 0, result.err
    posts = client.rest(f"/api/im/messages/{conv}")
    assert [(p["kind"], p["status"]) for p in posts] == [
        ("refused", 429),
        ("refused", 429),
        ("rest", 201),
        ("rest", 201),
    ]
    keys = [p["headers"]["X-Idempotency-Key"] for p in posts]
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert [(r["ok"], r["line"]) for r in result.lines] == [(True, 1), (True, 2)]
    assert [s["content"] for s in client.stored(conv)] == ["once", "twice"]


def test_rest_retries_exhausted(client: Client) -> None:
    """REST posts refused past the retries: one failed result per command, no re-post, exit 4."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    client.server.set_faults(["rate-limit=50:0"])
    try:
        stdin = lines_of(
            {"conversationId": conv, "content": "a"}, {"conversationId": conv, "content": "b"}
        )
        result = client.run("send", "--transport", "sse", input=stdin)
    finally:
        client.server.set_faults([])
    assert result.code == 4, result.err
    assert [(r["ok"], r["line"]) for r in result.lines] == [(False, 1), (False, 2)]
    posts = client.rest(f"/api/im/messages/{conv}")
    assert posts and all(p["status"] == 429 for p in posts)
    # every attempt at a message carries that message's key: never two keys for one command
    assert len({p["headers"]["X-Idempotency-Key"] for p in posts}) <= 2
    assert client.stored(conv) == []


# ── failures ─────────────────────────────────────────────────────────────


def test_unconfirmed_message(srv: ServerProcess) -> None:
    """Server dialect: no echo within --wait means a result that says so, and exit 4."""
    client = Client(srv)
    conv = new_conv()
    client.join(conv)
    srv.set_faults(["half-open-after=0"])  # the server goes silent after authenticating
    try:
        started = time.monotonic()
        result = client.run("send", conv, "into the void", "--wait", "0.5", timeout=15)
        elapsed = time.monotonic() - started
    finally:
        srv.set_faults([])
    assert result.code == 4, result.err
    [line] = result.lines
    assert line["ok"] is False
    assert "not confirmed" in line["error"]
    assert elapsed < 6, elapsed


def test_unreachable_server(tmp_path: Any) -> None:
    """A closed port: a failed result for every command, exit 4, no traceback."""
    url = f"http://127.0.0.1:{closed_port()}"
    token = "sekrit-" + uuid.uuid4().hex
    env = env_for(url, token)
    stdin = lines_of(
        {"conversationId": "c1", "content": "a"},
        {"action": "mark_read", "conversationId": "c1", "upToMessageId": "m1"},
        {"conversationId": "c2", "content": "b"},
    )
    cases = [
        (["send"], 3),
        (["send", "--transport", "sse"], 3),
        (["send", "c1", "hello"], 1),
        (["mark-read", "c1", "m1"], 1),
    ]
    results = run_all([(args, env, stdin) for args, _ in cases])
    for (args, count), result in zip(cases, results, strict=True):
        assert_clean(result, token)
        assert result.code == 4, (args, result.err)
        assert [r["ok"] for r in result.lines] == [False] * count, (args, result.out)
        assert result.err.strip(), args


class Producer:
    """`prismer-rt ARGS` fed by a slow producer: lines written one at a time, results read back."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def write(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(lines_of(obj).encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pytest.fail("the command stopped reading stdin")

    def result(self, timeout: float = 20) -> dict[str, Any]:
        """The next result line."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no result line in time"
        line: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return line

    def finish(self, timeout: float = 20) -> Result:
        """Close stdin; the exit status and what is left of the output."""
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        try:
            self.proc.stdin.close()
            code = self.proc.wait(timeout)
            return Result(code, self.proc.stdout.read().decode(), self.proc.stderr.read().decode())
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_unreachable_server_slow_producer() -> None:
    """Lines that arrive after the connection failed still get their failed result lines."""
    url = f"http://127.0.0.1:{closed_port()}"
    token = "sekrit-" + uuid.uuid4().hex
    producer = Producer("send", env=env_for(url, token))
    try:
        producer.write({"conversationId": "c1", "content": "a"})
        first = producer.result()
        assert (first["ok"], first["line"]) == (False, 1)
        producer.write({"conversationId": "c1", "content": "b"})
        result = producer.finish()
    finally:
        producer.kill()
    assert_clean(result, token)
    assert result.code == 4
    [second] = result.lines
    assert (second["ok"], second["line"]) == (False, 2)


def test_connection_dropped_between_lines(client: Client) -> None:
    """The server drops the socket after each echo: the next line goes on a new connection."""
    # In the server dialect the unacknowledged echo is re-sent on that new connection, which
    # then drops at once: the second message, written but never confirmed, is sent again with
    # its key until the retries run out, then reported failed. In the docs dialect the drop
    # comes before the pong that would confirm a message: each is uncertain, never re-sent.
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    client.server.set_faults(["drop-after=1"])
    producer = Producer("send", env=env_for(client.server.url, client.token))
    try:
        producer.write({"conversationId": conv, "content": "first"})
        first = producer.result()
        time.sleep(0.2)  # the drop happens right after the echo
        producer.write({"conversationId": conv, "content": "second"})
        second = producer.result()
        result = producer.finish()
    finally:
        producer.kill()
        client.server.set_faults([])
    assert_clean(result, client.token)
    assert result.lines == []  # exactly one result per command, both read above
    assert (first["line"], second["line"]) == (1, 2)
    stored = [s["content"] for s in client.stored(conv)]
    if client.dialect == "docs":
        assert len(client.connects()) == 2
        # confirmed by its echo if that got out before the drop, else uncertain: never a
        # plain "ok" for a frame only written
        for each in (first, second):
            assert each["ok"] or "may or may not have been delivered" in each["error"]
        assert result.code == (0 if first["ok"] and second["ok"] else 4), result.err
        assert stored == ["first", "second"]
    else:
        assert first["ok"] is True
        assert result.code == 4, result.err
        assert second["ok"] is False
        assert "connection lost" in second["error"]
        assert "may or may not have been delivered" in second["error"]
        assert stored.count("second") <= 1  # sent again, with the same key
        assert stored[0] == "first"
        assert len(client.connects()) >= 2  # one more if the write itself failed: sent again


def test_interrupt_while_waiting_for_confirmation(srv: ServerProcess) -> None:
    """Ctrl-C while the server has not confirmed: exit 130 at once, the message reported failed."""
    client = Client(srv)
    conv = new_conv()
    client.join(conv)
    srv.set_faults(["half-open-after=0"])  # no echo will ever come
    producer = Producer("send", conv, "unconfirmed", env=env_for(srv.url, client.token))
    try:
        deadline = time.monotonic() + 10
        while not client.connects() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # written, now waiting for the echo (--wait is 10 s)
        started = time.monotonic()
        producer.proc.send_signal(signal.SIGINT)
        result = producer.finish(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        producer.kill()
        srv.set_faults([])
    assert_clean(result, client.token)
    assert result.code == 130, result.err
    assert elapsed < 3, elapsed
    [line] = result.lines
    assert line["ok"] is False and "interrupted" in line["error"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_closes_with_1000(client: Client, signum: int, code: int) -> None:
    """Interrupted while reading stdin: the results so far, then a close 1000, exit 130/143."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    producer = Producer("send", env=env_for(client.server.url, client.token))
    try:
        producer.write({"conversationId": conv, "content": "before the signal"})
        first = producer.result()
        producer.proc.send_signal(signum)
        assert producer.proc.stdin is not None
        producer.proc.wait(10)
        result = producer.finish()
    finally:
        producer.kill()
    assert_clean(result, client.token)
    assert result.code == code, result.err
    assert first["ok"] is True and result.lines == []
    [connect] = client.connects()
    closes = [r for r in client.log() if r["kind"] == "ws_close" and r["conn"] == connect["conn"]]
    assert [c["code"] for c in closes] == [1000]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_bad_token(locked: dict[str, ServerProcess], dialect: str) -> None:
    """A token the server refuses: exit 3 at once, over WebSocket and over REST, no traceback."""
    client = Client(locked[dialect], token="bad-token-" + uuid.uuid4().hex)
    cases = [
        (["send", "c1", "hello"], None),
        (["send"], lines_of({"conversationId": "c1", "content": "a"})),
        (["send", "-v", "--transport", "sse", "c1", "hello"], None),
        (["mark-read", "-v", "c1", "m1"], None),
        (["mark-read", "--transport", "sse", "c1"], None),
    ]
    env = env_for(client.server.url, client.token)
    started = time.monotonic()
    results = run_all([(args, env, stdin) for args, stdin in cases])
    assert time.monotonic() - started < 5  # AUTH_FAILED is final: no waiting for the close
    for (args, _), result in zip(cases, results, strict=True):
        assert_clean(result, client.token)
        assert result.code == 3, (args, result.err)
        assert "reject" in result.err, result.err
        assert all(r["ok"] is False for r in result.lines), result.out
    # nothing was sent on a socket the server had not authenticated
    assert not [r for r in client.log() if r["kind"] == "ws_frame_in"]


# ── volume ───────────────────────────────────────────────────────────────


def test_many_commands_over_one_connection(client: Client) -> None:
    """2,000 JSON lines: 2,000 results in order, all ok, one connection (no write/echo deadlock)."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    count = 2000
    padding = "x" * 300
    stdin = lines_of(
        *({"conversationId": conv, "content": f"m{i} {padding}"} for i in range(count))
    )
    result = client.run("send", input=stdin, timeout=60)
    assert result.code == 0, result.err
    lines = result.lines
    assert len(lines) == count
    assert all(r["ok"] for r in lines)
    assert [r["line"] for r in lines] == list(range(1, count + 1))
    if client.dialect == "server":
        assert [r["message"]["content"] for r in lines] == [f"m{i} {padding}" for i in range(count)]
    assert len(client.connects()) == 1
    seen = [m["content"] for m in sent_messages(client)]
    assert seen == [f"m{i} {padding}" for i in range(count)]


# ── hygiene ──────────────────────────────────────────────────────────────


def test_token_never_printed_even_verbose(client: Client) -> None:
    """With -v, --token on the command line and a failing command, the token is never printed."""
    conv = new_conv()
    if client.dialect == "server":
        client.join(conv)
    env = env_for(client.server.url, None)
    stdin = lines_of(
        {"conversationId": conv, "content": f"hello {uuid.uuid4().hex}"},
        {"conversationId": "", "content": "invalid"},
        {"conversationId": new_conv(), "content": "maybe refused"},
    )
    url = f"http://127.0.0.1:{closed_port()}"
    jobs = [
        (["-v", "send", "--token", client.token], env, stdin),
        (["send", "-v", "--token", client.token, "--transport", "sse"], env, stdin),
        (["--token", client.token, "-v", "mark-read", conv, "m1"], env, stdin),
        (["send", "-v", "--url", url, "--token", client.token, "c", "x"], env, None),
    ]
    results = run_all(jobs)
    for (args, _, _), result in zip(jobs[:3], results, strict=False):
        assert_clean(result, client.token)
        assert result.code in (0, 5, 6), (args, result.err)
        assert result.err.strip()  # -v said something: it would have had a chance to leak
    assert_clean(results[3], client.token)
    assert results[3].code == 4


def test_token_from_a_file_is_redacted_too(client: Client, tmp_path: Any) -> None:
    """A token read from a file is redacted too when the server refuses a command."""
    conv = new_conv()
    path = tmp_path / "token"
    path.write_text(client.token + "\n")
    os.chmod(path, 0o600)
    env = env_for(client.server.url, None)
    result = run("send", "-v", "--token-file", str(path), conv, "hi", env=env)
    assert_clean(result, client.token)
    assert result.code in (0, 5)


def test_empty_message_argument_is_a_usage_error(client: Client) -> None:
    """`send C ""` sends nothing: exit 2, no connection."""
    before = len(client.server.log())
    result = client.run("send", new_conv(), "")
    assert result.code == 2 and "empty" in result.err
    assert not [r for r in client.server.log()[before:] if r["kind"] == "ws_connect"]
