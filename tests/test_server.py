"""The stand-in server (``prismer-rt serve``) on real loopback sockets, driven with raw frames.

The server-dialect tests replay the client frames of the recorded transcripts
(``shared/transcripts/03``, ``04``, ``07``) and compare the answers' shapes with the recorded
ones, ignoring ids and timestamps.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from prismer_cli.server.faults import FaultSpecError, parse_fault
from prismer_cli.server.state import Store
from prismer_cli.server.users import user_id_for_token
from tests.support.api import call as rest
from tests.support.serverfixture import (
    BlackHole,
    ServerFactory,
    ServerProcess,
    running_server,
    server_command,
    server_env,
    server_factory,
)

__all__ = ["server_factory"]  # the fixture, imported so pytest finds it here

TIMEOUT = 3.0
QUIET = 0.3  # how long "nothing more arrives" is watched
DOCS_TOKEN = "docs-secret-token-4f1e"
SERVER_TOKEN = "server-secret-token-9a2c"
VOLATILE = {"id", "conversationId", "senderId", "userId", "createdAt", "timestamp", "ackId"}


# ── helpers ──────────────────────────────────────────────────────────────


class Sockets:
    """Opens WebSockets and SSE streams for one test and closes them all afterwards."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self._open: list[Any] = []

    def ws(self, token: str | None = None, *, path: str = "/ws") -> websocket.WebSocket:
        query = "" if token is None else f"?token={token}"
        conn = websocket.create_connection(self.server.ws_url + path + query, timeout=TIMEOUT)
        self._open.append(conn)
        return conn

    def sse(self, path: str, headers: dict[str, str] | None = None) -> SseStream:
        response = requests.get(
            self.server.url + path, stream=True, timeout=TIMEOUT, headers=headers or {}
        )
        self._open.append(response)
        return SseStream(response)

    def close(self) -> None:
        for item in self._open:
            if isinstance(item, websocket.WebSocket):
                item.shutdown()
            else:
                item.close()


class SseStream:
    """Reads an SSE response block by block (a block ends with a blank line)."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self._lines = response.iter_lines(decode_unicode=True)

    def block(self) -> list[str]:
        lines: list[str] = []
        for line in self._lines:
            if line == "" and lines:
                return lines
            if line != "":
                lines.append(line)
        raise EOFError("the stream ended")

    def event(self) -> dict[str, str]:
        """The next block that carries data, as a dict of its fields (comments skipped)."""
        while True:
            fields = dict(line.split(": ", 1) for line in self.block() if not line.startswith(":"))
            if "data" in fields:
                return fields


def new_token() -> str:
    return "tok-" + uuid.uuid4().hex[:12]


def recv_json(ws: websocket.WebSocket) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv())
    return frame


def recv_close(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read up to the close frame; (code, reason), 1005 when it has no status. The close is
    not answered (recv_frame, not recv_data): a server that closes its end right after its close
    frame would make the answer a broken pipe, and the test is about what the server sent."""
    while True:
        frame = ws.recv_frame()
        opcode, data = frame.opcode, frame.data
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            if len(data) < 2:
                return 1005, ""
            return struct.unpack("!H", data[:2])[0], data[2:].decode()


def assert_quiet(ws: websocket.WebSocket, seconds: float = QUIET) -> None:
    """Nothing arrives on this socket for a while."""
    ws.settimeout(seconds)
    try:
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data(control_frame=True)
    finally:
        ws.settimeout(TIMEOUT)


def send(ws: websocket.WebSocket, frame: Any) -> None:
    ws.send(frame if isinstance(frame, str) else json.dumps(frame))


def shape(value: Any) -> Any:
    """A frame with ids and times blanked, to compare with a recorded one."""
    if isinstance(value, dict):
        return {k: "<v>" if k in VOLATILE else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def register(server: ServerProcess, name: str) -> tuple[str, str]:
    """A fresh user on the server: (token, user id)."""
    username = f"{name}_{uuid.uuid4().hex[:6]}"
    body = {"type": "agent", "username": username, "displayName": username}
    answer = rest(server, "POST", "/api/im/register", json=body)
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    return data["token"], data["imUserId"]


def direct(server: ServerProcess, token: str, to: str, content: str) -> dict[str, Any]:
    answer = rest(server, "POST", f"/api/im/direct/{to}/messages", token, json={"content": content})
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


# ── servers shared by a module's tests ───────────────────────────────────


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("docs"), dialect="docs", tokens=[f"{DOCS_TOKEN}=Docs Bot"]
    ) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server dialect, closed to one listed token; tests register their users."""
    with running_server(
        tmp_path_factory.mktemp("server"),
        dialect="server",
        tokens=[SERVER_TOKEN],
        auth_timeout=1.5,
        ack_timeout=1.0,
        heartbeat=0.3,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An open-mode docs server whose faults each test sets and clears."""
    with running_server(tmp_path_factory.mktemp("faults"), dialect="docs") as server:
        yield server


@pytest.fixture
def sockets(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``sockets(server)`` gives a :class:`Sockets`; everything opened is closed after the test."""
    made: list[Sockets] = []

    def make(server: ServerProcess) -> Sockets:
        made.append(Sockets(server))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def faulty(fault_server: ServerProcess) -> Iterator[ServerProcess]:
    """The fault server, with its faults cleared again after the test."""
    fault_server.set_faults([])
    yield fault_server
    fault_server.set_faults([])


# ── pure parts ───────────────────────────────────────────────────────────


def test_fault_specs_parse_and_reject_nonsense() -> None:
    """Fault specs parse to kind/count/retry-after; malformed ones are refused with a reason."""
    assert parse_fault("refuse=2:7").spec() == "refuse=2:7"
    assert parse_fault("refuse=2").retry_after is None
    assert parse_fault("drop-after=3").count == 3
    assert parse_fault("no-websocket").kind == "no-websocket"
    for bad in ("nope", "refuse", "rate-limit=3", "garbage=1", "drop-after=x", "refuse=-1"):
        with pytest.raises(FaultSpecError):
            parse_fault(bad)


def test_user_ids_are_stable_per_token_and_closed_mode_refuses_others() -> None:
    """A token always maps to usr_+sha256[:12]; listed tokens only, with their names."""
    store = Store(["alpha=Alice", "beta"])
    alice = store.user_for_token("alpha")
    assert alice is not None and alice.display_name == "Alice"
    assert alice.id == user_id_for_token("alpha") and alice.id.startswith("usr_")
    beta = store.user_for_token("beta")
    assert beta is not None and beta.display_name.startswith("agent-")
    assert store.user_for_token("gamma") is None
    assert Store().user_for_token("anything") is not None  # open mode


# ── docs dialect: WebSocket ──────────────────────────────────────────────


def test_docs_good_token_gets_auth_success_first(docs_server: ServerProcess, sockets: Any) -> None:
    """A listed token gets auth_success {userId, name, connectedAt} as the first frame."""
    ws = sockets(docs_server).ws(DOCS_TOKEN)
    hello = recv_json(ws)
    assert hello["type"] == "auth_success"
    assert hello["payload"]["userId"] == user_id_for_token(DOCS_TOKEN)
    assert hello["payload"]["name"] == "Docs Bot"
    assert hello["payload"]["connectedAt"].endswith("Z")
    assert set(hello) == {"type", "payload"}


def test_docs_bad_token_gets_auth_error_and_close_4001(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """An unknown or missing token gets auth_error, then a close with code 4001."""
    for token in ("not-a-token", None):
        ws = sockets(docs_server).ws(token)
        assert recv_json(ws) == {"type": "auth_error", "payload": {"message": "Invalid token"}}
        assert recv_close(ws)[0] == 4001


def test_docs_send_message_reaches_every_participant_and_the_sender(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """send_message delivers message.new with the page's fields to all, the sender included."""
    (a_token, a_id), (b_token, _) = register(docs_server, "ann"), register(docs_server, "ben")
    conv = "conv-" + uuid.uuid4().hex[:8]
    a, b = sockets(docs_server).ws(a_token), sockets(docs_server).ws(b_token)
    recv_json(a)
    recv_json(b)
    send(b, {"action": "subscribe", "conversationId": conv})
    assert_quiet(b, 0.1)
    send(a, {"action": "subscribe", "conversationId": conv})
    send(a, {"action": "send_message", "conversationId": conv, "content": "hi", "type": "text"})
    for ws in (a, b):
        frame = recv_json(ws)
        assert frame["type"] == "message.new" and set(frame) == {"type", "payload"}
        payload = frame["payload"]
        assert set(payload) == {
            "id",
            "conversationId",
            "senderId",
            "senderName",
            "content",
            "type",
            "createdAt",
        }
        assert (payload["conversationId"], payload["senderId"]) == (conv, a_id)
        assert (payload["content"], payload["type"]) == ("hi", "text")
        assert payload["id"].startswith("msg_")


def test_docs_send_to_unknown_conversation_creates_it(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """Sending to an unknown conversation creates it: conversation.created, then message.new."""
    token, user_id = register(docs_server, "cat")
    ws = sockets(docs_server).ws(token)
    recv_json(ws)
    send(ws, {"action": "send_message", "conversationId": "brand-new-" + token, "content": "x"})
    created, message = recv_json(ws), recv_json(ws)
    assert created["type"] == "conversation.created"
    assert created["payload"]["participants"] == [user_id]
    assert message["type"] == "message.new" and message["payload"]["senderName"].startswith("cat_")


def test_docs_invalid_commands_get_error_frames(docs_server: ServerProcess, sockets: Any) -> None:
    """Not JSON, not an object, an unknown action or a missing field each get an error frame."""
    ws = sockets(docs_server).ws(DOCS_TOKEN)
    recv_json(ws)
    for bad in (
        "this is not json",
        "[1,2,3]",
        {"action": "fly"},
        {"conversationId": "c"},
        {"action": "send_message", "content": "no conversation"},
        {"action": "mark_read", "conversationId": "c"},
        {"action": "subscribe"},
    ):
        send(ws, bad)
        frame = recv_json(ws)
        assert frame["type"] == "error" and frame["payload"]["message"], bad


def test_docs_mark_read_answers_nothing_and_is_logged(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """mark_read records the marker silently; the frame is visible in /_control/log."""
    ws = sockets(docs_server).ws(DOCS_TOKEN)
    recv_json(ws)
    marker = "msg_" + uuid.uuid4().hex[:8]
    send(ws, {"action": "mark_read", "conversationId": "c-read", "upToMessageId": marker})
    assert_quiet(ws)
    frames = [r["frame"] for r in docs_server.log() if r["kind"] == "ws_frame_in" and "frame" in r]
    assert {"action": "mark_read", "conversationId": "c-read", "upToMessageId": marker} in frames


def test_docs_presence_update_on_first_connect_and_last_disconnect(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """Users sharing a conversation see presence.update online/offline with name and status."""
    (a_token, _), (b_token, b_id) = register(docs_server, "amy"), register(docs_server, "bo")
    conv = "conv-" + uuid.uuid4().hex[:8]
    opener = sockets(docs_server)
    a = opener.ws(a_token)
    recv_json(a)
    send(a, {"action": "subscribe", "conversationId": conv})
    b = opener.ws(b_token)
    recv_json(b)
    send(b, {"action": "subscribe", "conversationId": conv})
    assert_quiet(a, 0.1)  # b had no conversation with a when it connected
    b.close()
    offline = recv_json(a)
    assert offline["type"] == "presence.update"
    assert (offline["payload"]["userId"], offline["payload"]["status"]) == (b_id, "offline")
    b_again = opener.ws(b_token)
    recv_json(b_again)
    online = recv_json(a)
    assert online["payload"] == {
        "userId": b_id,
        "name": online["payload"]["name"],
        "status": "online",
    }
    assert online["payload"]["name"].startswith("bo_")
    b_again.close()
    assert recv_json(a)["payload"]["status"] == "offline"


# ── docs dialect: SSE and emit ───────────────────────────────────────────


def test_docs_sse_sends_numbered_named_events_after_retry(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """The docs SSE stream starts with retry: 1000 and carries id:, event: and data: lines."""
    token, user_id = register(docs_server, "sse")
    stream = sockets(docs_server).sse(f"/api/im/events/stream?token={token}")
    assert stream.response.status_code == 200
    assert stream.response.headers["Content-Type"] == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.block() == ["retry: 1000"]
    answer = rest(
        docs_server, "POST", "/api/im/messages/sse-conv-" + token, token, json={"content": "yo"}
    )
    assert answer.status_code == 201
    created, message = stream.event(), stream.event()
    logged = rest(docs_server, "GET", "/api/im/sync", token).json()["data"]["events"]
    seqs = [(e["type"], str(e["seq"])) for e in logged]
    assert seqs == [("conversation.create", created["id"]), ("message.new", message["id"])]
    assert (created["event"], message["event"]) == ("conversation.created", "message.new")
    assert int(message["id"]) == int(created["id"]) + 1
    payload = json.loads(message["data"])
    assert payload["content"] == "yo" and payload["senderId"] == user_id


def test_docs_sse_resumes_from_last_event_id(docs_server: ServerProcess, sockets: Any) -> None:
    """A Last-Event-ID header (a log seq) replays every later durable event first, so nothing
    is lost; ephemeral events come live without an id."""
    token, user_id = register(docs_server, "resume")
    for n in range(3):
        docs_server.emit("task.updated", {"taskId": f"t{n}", "status": "done"}, to=user_id)
    logged = rest(docs_server, "GET", "/api/im/sync", token).json()["data"]["events"]
    seqs = [str(e["seq"]) for e in logged]
    assert [e["type"] for e in logged] == ["task.notification"] * 3
    stream = sockets(docs_server).sse(
        f"/api/im/events/stream?token={token}", headers={"Last-Event-ID": seqs[0]}
    )
    stream.block()  # retry
    replayed = [stream.event() for _ in range(2)]
    assert [(e["id"], json.loads(e["data"])["taskId"]) for e in replayed] == [
        (seqs[1], "t1"),
        (seqs[2], "t2"),
    ]
    docs_server.emit("evolution.signal", {"n": 4}, to=user_id)
    live = stream.event()
    assert live["event"] == "evolution.signal" and "id" not in live
    docs_server.emit("task.updated", {"taskId": "t3", "status": "done"}, to=user_id)
    head = requests.get(docs_server.url + "/_control/sync-head", timeout=5).json()["head"]
    assert stream.event()["id"] == str(head)
    sse_records = [
        r for r in docs_server.log() if r["kind"] == "sse_connect" and r.get("user") == user_id
    ]
    assert sse_records[-1]["headers"] == {"Last-Event-ID": seqs[0]}


def test_docs_sse_bad_token_is_401_and_sse_path_is_404(docs_server: ServerProcess) -> None:
    """A bad token on the docs SSE path is a 401 JSON; /sse does not exist in this dialect."""
    bad = rest(docs_server, "GET", "/api/im/events/stream?token=wrong")
    assert bad.status_code == 401 and bad.json() == {
        "ok": False,
        "error": "Invalid or expired token",
    }
    assert rest(docs_server, "GET", f"/sse?token={DOCS_TOKEN}").status_code == 404


def test_docs_emit_reaches_websocket_and_sse(docs_server: ServerProcess, sockets: Any) -> None:
    """/_control/emit pushes a page event to the WebSocket and the SSE stream of a user."""
    token, user_id = register(docs_server, "emit")
    opener = sockets(docs_server)
    ws = opener.ws(token)
    recv_json(ws)
    stream = opener.sse(f"/api/im/events/stream?token={token}")
    stream.block()
    answer = docs_server.emit("message.edited", {"id": "m1", "content": "new"}, to=user_id)
    assert answer == {"ok": True, "delivered": 2}
    assert recv_json(ws) == {"type": "message.edited", "payload": {"id": "m1", "content": "new"}}
    assert stream.event()["event"] == "message.edited"


# ── server dialect: the recorded transcripts ─────────────────────────────


def recorded_new(kind: str, content: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A message.new frame as recorded in transcript 03 (ids and times blanked)."""
    payload = {"id": "x", "conversationId": "x", "senderId": "x", "type": kind}
    payload |= {"content": content, "metadata": metadata, "createdAt": "x"}
    return {"type": "message.new", "payload": payload, "timestamp": 1, "ackId": "ack_1"}


def recorded_error(message: str, code: str | None, request_id: str | None) -> dict[str, Any]:
    payload = {"message": message} if code is None else {"message": message, "code": code}
    frame: dict[str, Any] = {"type": "error", "payload": payload}
    if request_id is not None:
        frame["requestId"] = request_id
    return {**frame, "timestamp": 1}


SEND_1 = {"conversationId": "$conv", "content": "hi bob via WS", "type": "text"}
SEND_2 = {"conversationId": "$conv", "content": "markdown **via WS**", "type": "markdown"}
SEND_2 |= {"metadata": {"k": "v"}}
SEND_BAD = {"conversationId": "does-not-exist", "content": "x"}
TYPING = {"type": "typing.indicator", "payload": {"conversationId": "x", "userId": "x"}}
TYPING["payload"] |= {"isTyping": True}
RECONNECT_ACK = {"userId": "x", "undeliveredCount": 0, "syncAdvised": True}

# (socket that sends, client frame, [(socket, recorded answer), ...]), in transcript 03's order
TRANSCRIPT_03: list[tuple[str, Any, list[tuple[str, dict[str, Any]]]]] = [
    (
        "A",
        {"type": "ping", "requestId": "r-ping-1"},
        [("A", {"type": "pong", "payload": {}, "requestId": "r-ping-1", "timestamp": 1})],
    ),
    ("A", {"type": "ping"}, [("A", {"type": "pong", "payload": {}, "timestamp": 1})]),
    (
        "A",
        {"type": "message.send", "payload": SEND_1, "requestId": "r-send-1"},
        [
            ("B", recorded_new("text", "hi bob via WS", {})),
            ("A", recorded_new("text", "hi bob via WS", {})),
        ],
    ),
    (
        "A",
        {"type": "message.send", "payload": SEND_2},
        [
            ("B", recorded_new("markdown", "markdown **via WS**", {"k": "v"})),
            ("A", recorded_new("markdown", "markdown **via WS**", {"k": "v"})),
        ],
    ),
    (
        "A",
        {"type": "message.send", "payload": SEND_BAD, "requestId": "r-send-bad-conv"},
        [
            (
                "A",
                recorded_error(
                    "Internal error handling message.send", "INTERNAL", "r-send-bad-conv"
                ),
            )
        ],
    ),
    (
        "A",
        {"type": "typing.start", "payload": {"conversationId": "$conv"}},
        [("B", {**TYPING, "timestamp": 1})],
    ),
    (
        "A",
        {"type": "no.such.event", "payload": {}, "requestId": "r-unknown"},
        [("A", recorded_error("Unknown event type: no.such.event", "UNKNOWN_EVENT", "r-unknown"))],
    ),
    ("A", "this is not json", [("A", recorded_error("Invalid JSON", None, None))]),
    ("A", {"type": "agent.heartbeat", "payload": {"status": "online", "load": 0.1}}, []),
    (
        "A",
        {"type": "reconnect", "payload": {}, "requestId": "r-reconn"},
        [
            (
                "A",
                {
                    "type": "reconnect.ack",
                    "payload": RECONNECT_ACK,
                    "requestId": "r-reconn",
                    "timestamp": 1,
                },
            )
        ],
    ),
]


def _with_conversation(frame: Any, conversation_id: str) -> Any:
    if isinstance(frame, str):
        return frame
    return json.loads(json.dumps(frame).replace('"$conv"', json.dumps(conversation_id)))


def test_server_transcript_03_good_token(srv: ServerProcess, sockets: Any) -> None:
    """Replaying transcript 03's client frames gives the recorded answers, shape for shape."""
    (a_token, a_id), (b_token, b_id) = register(srv, "alice"), register(srv, "bob")
    conv = direct(srv, a_token, b_id, "hello bob (HTTP, before WS connect)")["conversationId"]
    opener = sockets(srv)
    ws = {"A": opener.ws(a_token), "B": opener.ws(b_token)}
    assert recv_json(ws["A"])["payload"] == {"userId": a_id}
    assert recv_json(ws["B"])["payload"] == {"userId": b_id}
    for sender, client_frame, answers in TRANSCRIPT_03:
        send(ws[sender], _with_conversation(client_frame, conv))
        for who, recorded in answers:
            got = recv_json(ws[who])
            assert shape(got) == shape(recorded), (client_frame, got)
            assert isinstance(got["timestamp"], int)
    assert_quiet(ws["A"], 0.1)
    assert_quiet(ws["B"], 0.1)
    reply = direct(srv, b_token, a_id, "reply from bob via HTTP")
    assert reply["conversationId"] == conv and reply["message"]["metadata"] == "{}"
    assert set(reply["message"]) >= {"status", "parentId", "quotedMessageId", "encrypted"}
    ack_ids = []
    for who in ("B", "A"):
        got = recv_json(ws[who])
        assert (got["type"], got["payload"]["content"]) == (
            "message.new",
            "reply from bob via HTTP",
        )
        ack_ids.append(int(got["ackId"].removeprefix("ack_")))
    assert ack_ids[1] == ack_ids[0] + 1  # one ackId per user, from one counter


def test_server_transcript_04_bad_token_and_authenticate(srv: ServerProcess, sockets: Any) -> None:
    """Transcript 04: AUTH_FAILED keeps the socket open, AUTH_REQUIRED, authenticate with
    retries of unacked frames, a wrong path, then the auth timeout closes with 4001."""
    (a_token, a_id), (b_token, _) = register(srv, "alice"), register(srv, "bob")
    opener = sockets(srv)
    first = opener.ws(a_token)
    recv_json(first)
    direct(srv, b_token, a_id, "unacked one")
    unacked = recv_json(first)
    first.close()

    bad = opener.ws("not-a-jwt")
    assert shape(recv_json(bad)) == shape(
        {
            "type": "error",
            "payload": {"message": "Invalid token", "code": "AUTH_FAILED"},
            "timestamp": 1,
        }
    )
    send(bad, {"type": "ping", "requestId": "r-ping-unauth"})
    assert recv_json(bad)["requestId"] == "r-ping-unauth"
    send(
        bad,
        {
            "type": "message.send",
            "payload": {"conversationId": "c", "content": "x"},
            "requestId": "r-unauth-send",
        },
    )
    assert shape(recv_json(bad)) == shape(
        recorded_error("Not authenticated", "AUTH_REQUIRED", "r-unauth-send")
    )

    notoken = opener.ws(None)
    assert_quiet(notoken, 0.1)
    send(notoken, {"type": "authenticate", "payload": {"token": a_token}, "requestId": "r-auth"})
    hello = recv_json(notoken)
    assert (hello["type"], hello["payload"], hello["requestId"]) == (
        "authenticated",
        {"userId": a_id},
        "r-auth",
    )
    retry = recv_json(notoken)
    assert retry == {**unacked, "isRetry": True}  # same frame, same ackId, same timestamp
    send(
        notoken,
        {"type": "authenticate", "payload": {"token": "garbage"}, "requestId": "r-auth-bad"},
    )
    failed = recv_json(notoken)
    assert (failed["payload"]["code"], failed["requestId"]) == ("AUTH_FAILED", "r-auth-bad")

    with pytest.raises(websocket.WebSocketBadStatusException) as wrong_path:
        opener.ws(a_token, path="/wsx")
    assert wrong_path.value.status_code == 400

    bad.settimeout(5)
    timeout = recv_json(bad)
    assert (timeout["type"], timeout["payload"]) == ("error", {"message": "Authentication timeout"})
    assert recv_close(bad) == (4001, "Authentication timeout")


def test_server_transcript_07_acked_frames_are_not_redelivered(
    srv: ServerProcess, sockets: Any
) -> None:
    """Transcript 07: an acked frame stays delivered, an unacked one comes back once with
    isRetry on the next connection; the SSE stream shows the same ackIds."""
    (a_token, _), (b_token, b_id) = register(srv, "alice"), register(srv, "bob")
    opener = sockets(srv)
    stream = opener.sse(f"/sse?token={b_token}")
    assert json.loads(stream.event()["data"])["type"] == "authenticated"
    b1 = opener.ws(b_token)
    recv_json(b1)
    direct(srv, a_token, b_id, "msg-1 (will be acked)")
    one = recv_json(b1)
    assert json.loads(stream.event()["data"])["ackId"] == one["ackId"]
    send(b1, {"type": "ack", "payload": {"ackId": one["ackId"]}})
    direct(srv, a_token, b_id, "msg-2 (NOT acked)")
    two = recv_json(b1)
    assert json.loads(stream.event()["data"])["ackId"] == two["ackId"]
    b1.close()
    b2 = opener.ws(b_token)
    assert recv_json(b2)["type"] == "authenticated"
    retry = recv_json(b2)
    assert (retry["payload"]["content"], retry["ackId"], retry["isRetry"]) == (
        "msg-2 (NOT acked)",
        two["ackId"],
        True,
    )
    assert_quiet(b2)


def test_server_unacked_frame_is_queued_after_the_ack_timeout(
    srv: ServerProcess, sockets: Any
) -> None:
    """A frame not acked within the ack timeout is re-sent to the user's next connection."""
    (a_token, _), (b_token, b_id) = register(srv, "alice"), register(srv, "bob")
    opener = sockets(srv)
    b1 = opener.ws(b_token)
    recv_json(b1)
    direct(srv, a_token, b_id, "late")
    sent = recv_json(b1)
    assert_quiet(b1, 1.3)  # longer than the 1 s ack timeout
    b2 = opener.ws(b_token)  # b1 is still open
    recv_json(b2)
    assert recv_json(b2) == {**sent, "isRetry": True}


def test_server_sixth_connection_replaces_the_oldest(srv: ServerProcess, sockets: Any) -> None:
    """At most five connections per user: the sixth makes the server drop the oldest."""
    token, _ = register(srv, "many")
    opener = sockets(srv)
    conns = [opener.ws(token) for _ in range(5)]
    for conn in conns:
        recv_json(conn)
    sixth = opener.ws(token)
    assert recv_json(sixth)["type"] == "authenticated"
    notice = recv_json(conns[0])
    assert notice == {"type": "error", "data": {"message": "Connection replaced by newer client"}}
    assert recv_close(conns[0])[0] == 1005  # a close frame without status, as Node's ws.close()
    assert_quiet(conns[1], 0.1)


def test_server_sse_is_unnamed_with_heartbeats_and_401s(srv: ServerProcess, sockets: Any) -> None:
    """/sse sends unnamed data: envelopes starting with authenticated, and heartbeats;
    bad or missing tokens get the recorded 401 JSON; the docs path is 404."""
    token, user_id = register(srv, "stream")
    stream = sockets(srv).sse(f"/sse?token={token}")
    headers = stream.response.headers
    assert (headers["Content-Type"], headers["X-Accel-Buffering"]) == ("text/event-stream", "no")
    first = stream.block()
    assert len(first) == 1 and first[0].startswith("data: ")
    assert json.loads(first[0][6:])["payload"] == {"userId": user_id}
    assert stream.block() == [": heartbeat"]  # every 0.3 s on this server
    srv.emit("task.notification", {"taskId": "t"}, to=user_id)
    event = stream.event()
    assert set(event) == {"data"}
    assert json.loads(event["data"])["type"] == "task.notification"
    bad = rest(srv, "GET", "/sse?token=not-a-jwt")
    assert (bad.status_code, bad.json()["error"]) == (401, "Invalid or expired token")
    assert rest(srv, "GET", "/sse").json() == {
        "ok": False,
        "error": "Token required (?token=<JWT>)",
    }
    assert rest(srv, "GET", f"/api/im/events/stream?token={token}").status_code == 404


def test_server_presence_typing_and_leave(srv: ServerProcess, sockets: Any) -> None:
    """presence.update reaches everyone as presence.changed; typing only the others, without
    ackId; after conversation.leave the room's messages stop arriving."""
    (a_token, a_id), (b_token, b_id) = register(srv, "alice"), register(srv, "bob")
    conv = direct(srv, a_token, b_id, "start")["conversationId"]
    opener = sockets(srv)
    a, b = opener.ws(a_token), opener.ws(b_token)
    recv_json(a)
    recv_json(b)
    send(a, {"type": "presence.update", "payload": {"status": "busy"}})
    for ws in (b, a):
        changed = recv_json(ws)
        assert (changed["type"], changed["payload"]["userId"], changed["payload"]["status"]) == (
            "presence.changed",
            a_id,
            "busy",
        )
        assert "ackId" not in changed and isinstance(changed["payload"]["lastSeen"], int)
    send(a, {"type": "typing.stop", "payload": {"conversationId": conv}})
    typing = recv_json(b)
    assert typing["payload"]["isTyping"] is False and "ackId" not in typing
    assert_quiet(a, 0.1)
    send(b, {"type": "conversation.leave", "payload": {"conversationId": conv}})
    send(a, {"type": "message.send", "payload": {"conversationId": conv, "content": "room"}})
    assert recv_json(a)["payload"]["content"] == "room"
    assert_quiet(b, 0.2)


def test_server_rest_post_is_delivered_and_unknown_conversation_is_404(
    srv: ServerProcess, sockets: Any
) -> None:
    """POST /messages/{id} is delivered over WebSocket with an ackId; an unknown id is 404."""
    (a_token, _), (b_token, b_id) = register(srv, "alice"), register(srv, "bob")
    conv = direct(srv, a_token, b_id, "start")["conversationId"]
    b = sockets(srv).ws(b_token)
    recv_json(b)
    answer = rest(
        srv,
        "POST",
        f"/api/im/messages/{conv}",
        a_token,
        json={"content": "via REST", "metadata": {"x": 1}},
    )
    assert answer.status_code == 201
    got = recv_json(b)
    assert got["payload"]["metadata"] == {"x": 1} and got["ackId"].startswith("ack_")
    missing = rest(srv, "POST", "/api/im/messages/nope", a_token, json={"content": "x"})
    assert (missing.status_code, missing.json()["ok"]) == (404, False)
    outsider, _ = register(srv, "eve")
    assert (
        rest(srv, "POST", f"/api/im/messages/{conv}", outsider, json={"content": "x"}).status_code
        == 403
    )


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")
def test_prismer_python_sdk_talks_to_the_server_dialect(srv: ServerProcess) -> None:
    """Prismer's own SDK client connects, joins, sends, gets its own message.new and a pong."""
    realtime = pytest.importorskip("prismer.realtime")
    token, user_id = register(srv, "sdk")
    client = realtime.RealtimeWSClient(
        srv.url, realtime.RealtimeConfig(token=token, auto_reconnect=False)
    )
    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    def on_message(payload: dict[str, Any]) -> None:
        received.append(payload)
        arrived.set()

    client.on("message.new", on_message)
    client.connect()
    try:
        conversation = "sdk-conv-" + uuid.uuid4().hex[:8]
        client.join_conversation(conversation)
        client.send_message(conversation, "hello from the SDK")
        assert arrived.wait(TIMEOUT)
        assert received[0]["content"] == "hello from the SDK"
        assert received[0]["senderId"] == user_id
        pong = client.ping(timeout=TIMEOUT)
        assert pong["requestId"].startswith("ping-")
    finally:
        client.disconnect()


# ── REST ─────────────────────────────────────────────────────────────────


def test_rest_register_answers_like_the_transcript(docs_server: ServerProcess) -> None:
    """register: 201 with a usable token, 409 for a taken username, 400 for a bad type."""
    username = "reg_" + uuid.uuid4().hex[:6]
    body = {"type": "agent", "username": username, "displayName": "Reg", "capabilities": ["chat"]}
    created = rest(docs_server, "POST", "/api/im/register", json=body)
    assert created.status_code == 201
    data = created.json()["data"]
    assert set(data) == {
        "imUserId",
        "username",
        "displayName",
        "role",
        "token",
        "expiresIn",
        "capabilities",
        "isNew",
    }
    me = rest(docs_server, "GET", "/api/im/me", data["token"]).json()["data"]
    assert me["user"]["id"] == data["imUserId"] and me["agentCard"]["capabilities"] == ["chat"]
    dup = {"type": "agent", "username": username, "displayName": "dup"}  # as transcript 01
    taken = rest(docs_server, "POST", "/api/im/register", json=dup)
    assert (taken.status_code, taken.json()["error"]) == (
        409,
        f"Username '{username}' is already taken",
    )
    robot = rest(docs_server, "POST", "/api/im/register", json={"type": "robot", "username": "x"})
    assert (robot.status_code, robot.json()["error"]) == (400, 'type must be "agent" or "human"')


def test_rest_needs_a_bearer_token(docs_server: ServerProcess) -> None:
    """Missing or unknown Bearer tokens get a 401 JSON error."""
    assert rest(docs_server, "GET", "/api/im/me").status_code == 401
    unknown = rest(docs_server, "GET", "/api/im/conversations", "nope")
    assert unknown.status_code == 401 and unknown.json() == {
        "ok": False,
        "error": "Invalid or expired token",
    }


def test_rest_idempotency_key_posts_only_once(docs_server: ServerProcess, sockets: Any) -> None:
    """The same X-Idempotency-Key from the same user returns the stored answer, one message."""
    token, _ = register(docs_server, "idem")
    conv = "idem-" + uuid.uuid4().hex[:8]
    ws = sockets(docs_server).ws(token)
    recv_json(ws)
    send(ws, {"action": "subscribe", "conversationId": conv})
    headers = {"X-Idempotency-Key": "key-1"}
    first = rest(
        docs_server,
        "POST",
        f"/api/im/messages/{conv}",
        token,
        json={"content": "once"},
        headers=headers,
    )
    again = rest(
        docs_server,
        "POST",
        f"/api/im/messages/{conv}",
        token,
        json={"content": "once"},
        headers=headers,
    )
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert recv_json(ws)["payload"]["content"] == "once"
    assert_quiet(ws)
    events = rest(docs_server, "GET", "/api/im/sync?since=0", token).json()["data"]["events"]
    assert [e["data"]["content"] for e in events if e["type"] == "message.new"] == ["once"]
    logged = [
        r
        for r in docs_server.log()
        if r["kind"] == "rest" and r["path"] == f"/api/im/messages/{conv}"
    ]
    assert [r["headers"] for r in logged] == [headers, headers]


def test_rest_direct_conversations_and_read(docs_server: ServerProcess) -> None:
    """A direct message creates a conversation both see; read marks it read (200 ok)."""
    (a_token, a_id), (b_token, b_id) = register(docs_server, "ann"), register(docs_server, "ben")
    sent = direct(docs_server, a_token, b_id, "hello")
    listed = rest(docs_server, "GET", "/api/im/conversations?withUnread=true", b_token).json()[
        "data"
    ]
    assert [(c["id"], c["type"], c["unreadCount"]) for c in listed] == [
        (sent["conversationId"], "direct", 1)
    ]
    assert listed[0]["createdById"] == a_id and listed[0]["metadata"] == '{"autoCreated":true}'
    read = rest(
        docs_server, "POST", f"/api/im/conversations/{sent['conversationId']}/read", b_token
    )
    assert (read.status_code, read.json()) == (200, {"ok": True})
    listed = rest(docs_server, "GET", "/api/im/conversations?withUnread=true", b_token).json()[
        "data"
    ]
    assert listed[0]["unreadCount"] == 0
    assert (
        rest(
            docs_server, "POST", "/api/im/direct/nobody/messages", a_token, json={"content": "x"}
        ).status_code
        == 404
    )


def test_tokens_never_appear_in_the_log_or_output(docs_server: ServerProcess, sockets: Any) -> None:
    """Tokens are redacted in the control log (token=***) and never printed by the server."""
    ws = sockets(docs_server).ws(DOCS_TOKEN)
    recv_json(ws)
    send(ws, {"action": "subscribe", "conversationId": "c", "token": DOCS_TOKEN})
    send(ws, '{"action": "subscribe", "token": "' + DOCS_TOKEN + '"')  # broken JSON
    assert recv_json(ws)["type"] == "error"
    rest(docs_server, "GET", f"/api/im/events/stream?token={DOCS_TOKEN}x")
    assert_quiet(ws, 0.1)
    text = json.dumps(docs_server.log())
    assert "token=***" in text
    assert DOCS_TOKEN not in text and DOCS_TOKEN not in docs_server.stderr


# ── faults ───────────────────────────────────────────────────────────────


def test_fault_no_websocket_answers_upgrades_with_400_html(
    faulty: ServerProcess, sockets: Any
) -> None:
    """no-websocket: upgrades get HTTP 400 with HTML, SSE and REST keep working."""
    faulty.set_faults(["no-websocket"])
    opener = sockets(faulty)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        opener.ws("someone")
    assert refused.value.status_code == 400
    assert b"<html>" in (refused.value.resp_body or b"")
    stream = opener.sse("/api/im/events/stream?token=someone")
    assert stream.block() == ["retry: 1000"]
    assert rest(faulty, "GET", "/api/im/me", "someone").status_code == 200
    assert any(r["kind"] == "refused" and r["fault"] == "no-websocket" for r in faulty.log())


def test_fault_refuse_gives_503_with_retry_after_then_recovers(
    faulty: ServerProcess, sockets: Any
) -> None:
    """refuse=2:7: two connection attempts get 503 with Retry-After: 7, the third works."""
    faulty.set_faults(["refuse=2:7"])
    opener = sockets(faulty)
    with pytest.raises(websocket.WebSocketBadStatusException) as first:
        opener.ws("someone")
    assert first.value.status_code == 503
    assert (first.value.resp_headers or {}).get("retry-after") == "7"
    second = rest(faulty, "GET", "/api/im/events/stream?token=someone")
    assert (second.status_code, second.headers["Retry-After"]) == (503, "7")
    assert rest(faulty, "GET", "/api/im/me", "someone").status_code == 200  # REST is no attempt
    assert recv_json(opener.ws("someone"))["type"] == "auth_success"
    refused = [r for r in faulty.log() if r["kind"] == "refused" and r["fault"] == "refuse"]
    assert [r["status"] for r in refused[-2:]] == [503, 503]


def test_fault_rate_limit_gives_429_to_any_request(faulty: ServerProcess, sockets: Any) -> None:
    """rate-limit=2:3: the next two requests of any kind get 429 with Retry-After: 3."""
    faulty.set_faults(["rate-limit=2:3"])
    limited = rest(faulty, "GET", "/api/im/me", "someone")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        sockets(faulty).ws("someone")
    assert refused.value.status_code == 429
    assert rest(faulty, "GET", "/api/im/me", "someone").status_code == 200


def test_fault_drop_after_aborts_the_connection_without_close(
    faulty: ServerProcess, sockets: Any
) -> None:
    """drop-after=1: after one event the TCP connection is cut, no close frame, no stream end."""
    faulty.set_faults(["drop-after=1"])
    opener = sockets(faulty)
    user_token = new_token()
    ws = opener.ws(user_token)
    recv_json(ws)
    faulty.emit("task.updated", {"n": 1}, to=user_id_for_token(user_token))
    faulty.emit("task.updated", {"n": 2}, to=user_id_for_token(user_token))
    assert recv_json(ws)["payload"] == {"n": 1}
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv_data(control_frame=True)  # no close frame: the socket just ends
    stream = opener.sse(f"/api/im/events/stream?token={user_token}")
    stream.block()
    faulty.emit("task.updated", {"n": 3}, to=user_id_for_token(user_token))
    faulty.emit("task.updated", {"n": 4}, to=user_id_for_token(user_token))
    assert json.loads(stream.event()["data"]) == {"n": 3}
    with pytest.raises((requests.exceptions.RequestException, EOFError)):
        stream.event()
    assert any(r["kind"] == "fault" and r["fault"] == "drop-after" for r in faulty.log())


def test_fault_half_open_goes_silent_but_keeps_the_socket(
    faulty: ServerProcess, sockets: Any
) -> None:
    """half-open-after=1: after one event nothing more is sent, pings get no pong, and the
    socket stays open."""
    faulty.set_faults(["half-open-after=1"])
    user_token = new_token()
    ws = sockets(faulty).ws(user_token)
    recv_json(ws)
    faulty.emit("task.updated", {"n": 1}, to=user_id_for_token(user_token))
    assert recv_json(ws)["payload"] == {"n": 1}
    faulty.emit("task.updated", {"n": 2}, to=user_id_for_token(user_token))
    ws.ping("are you there")
    send(ws, {"action": "nonsense"})  # would get an error frame from a live server
    assert_quiet(ws, 0.5)  # no event, no pong, no error, and no close either
    assert ws.connected


def test_fault_garbage_after_the_auth_frame(faulty: ServerProcess, sockets: Any) -> None:
    """garbage: three non-object text frames and a binary frame follow the auth frame."""
    faulty.set_faults(["garbage"])
    opener = sockets(faulty)
    user_token = new_token()
    ws = opener.ws(user_token)
    assert recv_json(ws)["type"] == "auth_success"
    assert [ws.recv() for _ in range(3)] == ["this is not json", "[1,2,3]", '"just a string"']
    opcode, _ = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    faulty.emit("task.updated", {"ok": 1}, to=user_id_for_token(user_token))
    assert recv_json(ws)["payload"] == {"ok": 1}
    stream = opener.sse(f"/api/im/events/stream?token={user_token}")
    assert stream.block() == ["retry: 1000"]
    assert stream.block() == ["data: not json"]


def test_fault_given_on_the_command_line(server_factory: ServerFactory, sockets: Any) -> None:
    """--fault applies from the start, in the server dialect too; /_control/faults shows it."""
    server = server_factory(dialect="server", faults=["garbage"])
    ws = sockets(server).ws(new_token())
    assert recv_json(ws)["type"] == "authenticated"
    assert ws.recv() == "this is not json"
    shown = requests.get(server.url + "/_control/faults", timeout=TIMEOUT).json()
    assert shown == {"ok": True, "faults": ["garbage"]}
    bad = requests.post(
        server.url + "/_control/faults", json={"faults": ["bogus"]}, timeout=TIMEOUT
    )
    assert bad.status_code == 400 and "bogus" in bad.json()["error"]


# ── the process ──────────────────────────────────────────────────────────


def test_stops_cleanly_on_sigterm(server_factory: ServerFactory, sockets: Any) -> None:
    """SIGTERM ends the server with exit code 0, no traceback, even with clients connected."""
    server = server_factory(dialect="server")
    opener = sockets(server)
    recv_json(opener.ws(new_token()))
    opener.sse(f"/sse?token={new_token()}").block()
    assert server.stop() == 0
    assert "Traceback" not in server.stderr
    assert server.stderr.splitlines()[0].startswith(
        "prismer-rt serve: listening on http://127.0.0.1:"
    )


def test_port_in_use_is_one_line_and_exit_4(tmp_path: Any) -> None:
    """A port already in use gives one line on stderr and exit code 4."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            server_command(port=port),
            env=server_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    assert result.returncode == 4
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert str(port) in result.stderr


def test_bad_options_are_one_line_and_exit_2(tmp_path: Any) -> None:
    """An unknown fault is a usage error: one line, exit code 2, no traceback."""
    result = subprocess.run(
        [*server_command(faults=["explode"]), "--token", "s3cret=Me"],
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "explode" in result.stderr
    assert "s3cret" not in result.stderr and sys.executable not in result.stderr


def test_options_are_declared_once_for_both_entry_points(tmp_path: Any) -> None:
    """``prismer-rt serve`` and ``python -m prismer_cli.server`` print the same option help."""
    helps = []
    for command in (
        [sys.executable, "-m", "prismer_cli", "serve", "--help"],
        [sys.executable, "-m", "prismer_cli.server", "--help"],
    ):
        result = subprocess.run(
            command, env=server_env(tmp_path), capture_output=True, text=True, timeout=20
        )
        assert result.returncode == 0, result.stderr
        helps.append(result.stdout.split("\n", 1)[1])  # past the "Usage: PROG" line
    assert helps[0] == helps[1]
    assert "--token-ttl SECONDS" in helps[0] and "604800" in helps[0]
    assert "--max-message-bytes BYTES" in helps[0] and "104857600" in helps[0]


def test_the_server_imports_nothing_from_the_client(tmp_path: Any) -> None:
    """The server package stands alone: no client module is loaded to run it."""
    probe = (
        "import sys, prismer_cli.server.command, prismer_cli.server.app, "
        "prismer_cli.server.runner\n"
        "print(sorted(m for m in sys.modules if m.startswith('prismer_cli') "
        "and m != 'prismer_cli' and not m.startswith('prismer_cli.server')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ── what the delivery and deadline tests of the client need ──────────────


def wait_for_record(server: ServerProcess, kind: str, seconds: float = TIMEOUT) -> dict[str, Any]:
    """The first ``/_control/log`` record of this kind, waiting for it a little."""
    deadline = time.monotonic() + seconds
    while True:
        found = [r for r in server.log() if r["kind"] == kind]
        if found or time.monotonic() > deadline:
            assert found, f"no {kind!r} record in the log"
            return found[0]
        time.sleep(0.05)


def test_restart_on_the_same_port_numbers_ack_ids_from_ack_1_again(
    server_factory: ServerFactory, sockets: Any
) -> None:
    """restart() SIGKILLs the server and starts a new process on the same port; the new one
    numbers its ackIds from ack_1 again, as the real server's per-process counter does."""
    server = server_factory(dialect="server", tokens=[SERVER_TOKEN])
    port, user = server.port, user_id_for_token(SERVER_TOKEN)
    first = sockets(server).ws(SERVER_TOKEN)
    assert recv_json(first)["type"] == "authenticated"
    server.emit("task.updated", {"n": 1}, to=user)
    server.emit("task.updated", {"n": 2}, to=user)
    assert [recv_json(first)["ackId"] for _ in range(2)] == ["ack_1", "ack_2"]
    old_process = server.process
    server.restart()
    assert old_process.returncode == -9 and server.process is not old_process
    assert server.port == port and server.process.poll() is None
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        first.recv_data(control_frame=True)  # the killed process's socket is gone
    second = sockets(server).ws(SERVER_TOKEN)
    assert recv_json(second)["type"] == "authenticated"
    server.emit("task.updated", {"n": 3}, to=user)
    frame = recv_json(second)
    assert (frame["ackId"], frame["payload"]) == ("ack_1", {"n": 3})
    assert server.stderr.count("listening on") == 2


@pytest.mark.parametrize(
    ("dialect", "edit", "status"),
    [("server", "message.edit", "message.updated"), ("docs", "message.edited", "message.status")],
)
def test_repeated_events_about_one_message_are_all_delivered(
    server_factory: ServerFactory, sockets: Any, dialect: str, edit: str, status: str
) -> None:
    """Three edits and three status changes of one message id are six events, each delivered,
    each with a new ackId (server dialect) or SSE id (docs dialect)."""
    server = server_factory(dialect=dialect)
    token = new_token()
    user = user_id_for_token(token)
    opener = sockets(server)
    ws = opener.ws(token)
    recv_json(ws)
    stream = None
    if dialect == "docs":
        stream = opener.sse(f"/api/im/events/stream?token={token}")
        stream.block()  # retry: 1000
    sent = [(edit, {"id": "msg_1", "conversationId": "c1", "content": f"v{n}"}) for n in (1, 2, 3)]
    sent += [(status, {"id": "msg_1", "conversationId": "c1", "status": s}) for s in STATUSES]
    for event_type, payload in sent:
        connections = 2 if dialect == "docs" else 1
        assert server.emit(event_type, payload, to=user) == {"ok": True, "delivered": connections}
    frames = [recv_json(ws) for _ in sent]
    assert [(f["type"], f["payload"]) for f in frames] == sent
    if dialect == "server":
        assert len({f["ackId"] for f in frames}) == len(sent)
    else:
        assert stream is not None
        events = [stream.event() for _ in sent]
        assert [(e["event"], json.loads(e["data"])) for e in events] == sent
        # SSE ids are the event log's seqs: each edit is stored, so each has an id of its own;
        # the docs dialect logs no status event, so those carry none.
        edits, statuses = events[:3], events[3:]
        assert len({e["id"] for e in edits}) == len(edits)
        assert all("id" not in e for e in statuses)


STATUSES = ("sent", "delivered", "read")


def _send_message_frame(dialect: str, conversation_id: str, content: str) -> str:
    if dialect == "docs":
        frame: dict[str, Any] = {
            "action": "send_message",
            "conversationId": conversation_id,
            "content": content,
        }
    else:
        payload = {"conversationId": conversation_id, "content": content}
        frame = {"type": "message.send", "payload": payload}
    return json.dumps(frame)


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_a_pong_confirms_every_frame_sent_before_the_ping(
    server_factory: ServerFactory, sockets: Any, dialect: str
) -> None:
    """N sends then a WebSocket ping: when the pong arrives all N are stored, and every echo
    of them came before it on that connection."""
    server = server_factory(dialect=dialect)
    token, conversation = new_token(), "conv-" + uuid.uuid4().hex[:8]
    ws = sockets(server).ws(token)
    recv_json(ws)
    if dialect == "server":
        send(ws, {"type": "conversation.join", "payload": {"conversationId": conversation}})
    count = 300
    for n in range(count):
        ws.send(_send_message_frame(dialect, conversation, f"m{n}"))
    ws.ping(b"batch-1")
    echoes = 0
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PONG:
            assert data == b"batch-1"
            break
        if json.loads(data)["type"] == "message.new":
            echoes += 1
    assert echoes == count
    stored = server.messages(conversation)
    assert [m["content"] for m in stored] == [f"m{n}" for n in range(count)]
    counts = requests.get(server.url + "/_control/messages", timeout=TIMEOUT).json()
    assert counts["ok"] is True and counts["counts"][conversation] == count
    assert server.messages("no-such-conversation") == []


def test_message_size_limit_closes_with_1009_and_bounds_rest_bodies(
    server_factory: ServerFactory, sockets: Any
) -> None:
    """--max-message-bytes: a message of exactly the limit is taken; one byte more gets a
    close frame 1009 with no reason (Node's ws), nothing after it is read; REST gets 413."""
    limit = 1000
    server = server_factory(dialect="docs", max_message_bytes=limit)
    token, conversation = new_token(), "big-" + uuid.uuid4().hex[:8]
    ws = sockets(server).ws(token)
    recv_json(ws)
    empty = _send_message_frame("docs", conversation, "")
    fits = _send_message_frame("docs", conversation, "x" * (limit - len(empty)))
    assert len(fits.encode()) == limit
    ws.send(fits)
    assert recv_json(ws)["type"] == "conversation.created"
    assert recv_json(ws)["type"] == "message.new"
    too_big = _send_message_frame("docs", conversation, "y" * (limit + 1 - len(empty)))
    ws.send(too_big)
    with contextlib.suppress(OSError):  # the server may have closed its end already
        ws.send(_send_message_frame("docs", conversation, "after"))
    assert recv_close(ws) == (1009, "")
    assert wait_for_record(server, "oversized")["limit"] == limit
    assert [len(m["content"]) for m in server.messages(conversation)] == [limit - len(empty)]
    path = f"/api/im/messages/{conversation}"
    big = rest(server, "POST", path, token, json={"content": "z" * limit})
    assert big.status_code == 413
    assert big.json() == {"ok": False, "error": "Request Entity Too Large"}
    assert rest(server, "POST", path, token, json={"content": "small"}).status_code == 201


def test_sixth_docs_connection_evicts_the_oldest_and_is_logged(
    docs_server: ServerProcess, sockets: Any
) -> None:
    """The docs dialect keeps the real server's cap too: the sixth connection closes the
    oldest with the real server's notice and a close without status; each is logged."""
    opener = sockets(docs_server)
    conns = [opener.ws(DOCS_TOKEN) for _ in range(5)]
    for conn in conns:
        assert recv_json(conn)["type"] == "auth_success"
    before = len([r for r in docs_server.log() if r["kind"] == "evicted"])
    sixth = opener.ws(DOCS_TOKEN)
    assert recv_json(sixth)["type"] == "auth_success"
    notice = recv_json(conns[0])
    assert notice == {"type": "error", "data": {"message": "Connection replaced by newer client"}}
    assert recv_close(conns[0])[0] == 1005
    assert_quiet(conns[1], 0.1)
    evicted = [r for r in docs_server.log() if r["kind"] == "evicted"]
    assert len(evicted) == before + 1
    assert evicted[-1]["user"] == user_id_for_token(DOCS_TOKEN)


def test_fault_upgrade_status_answers_every_upgrade_with_that_status(
    faulty: ServerProcess, sockets: Any
) -> None:
    """upgrade-status=502: every upgrade gets 502 with a proxy's HTML page, for as long as the
    fault stays; SSE and REST keep working."""
    faulty.set_faults(["upgrade-status=502"])
    opener = sockets(faulty)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            opener.ws("someone")
        assert refused.value.status_code == 502
        assert b"502 Bad Gateway" in (refused.value.resp_body or b"")
        assert "text/html" in (refused.value.resp_headers or {}).get("content-type", "")
    stream = opener.sse("/api/im/events/stream?token=someone")
    assert stream.block() == ["retry: 1000"]
    assert rest(faulty, "GET", "/api/im/me", "someone").status_code == 200
    refused_records = [r for r in faulty.log() if r["kind"] == "refused"]
    assert [(r["fault"], r["status"]) for r in refused_records[-2:]] == [
        ("upgrade-status", 502)
    ] * 2
    assert parse_fault("upgrade-status=500").count == 500
    for bad in ("upgrade-status", "upgrade-status=200", "upgrade-status=502:3"):
        with pytest.raises(FaultSpecError):
            parse_fault(bad)


def test_black_hole_accepts_and_never_answers(black_hole: BlackHole) -> None:
    """The black hole accepts TCP connections and answers nothing: no HTTP, no upgrade."""
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(black_hole.url + "/api/im/me", timeout=0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        websocket.create_connection(black_hole.ws_url + "/ws?token=t", timeout=0.3)
    assert black_hole.accepted == 2
