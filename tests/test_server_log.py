"""The stand-in server's event log (``GET /api/im/sync``), SSE ids and idempotency keys, over
real loopback sockets: the shapes and traps of the real server's ``sync.service.ts``."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from tests.support.api import call
from tests.support.serverfixture import ServerFactory, ServerProcess, running_server

TIMEOUT = 3.0
EVENT_KEYS = {"seq", "type", "data", "conversationId", "at"}
MESSAGE_KEYS = {"id", "conversationId", "senderId", "type", "content", "metadata", "parentId"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("log-server"), dialect="server") as server:
        yield server


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("log-docs"), dialect="docs") as server:
        yield server


def register(server: ServerProcess, name: str) -> tuple[str, str]:
    username = f"{name}_{uuid.uuid4().hex[:6]}"
    body = {"type": "agent", "username": username, "displayName": name}
    answer = call(server, "POST", "/api/im/register", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]["token"], answer.json()["data"]["imUserId"]


def sync(server: ServerProcess, token: str, query: str = "") -> dict[str, Any]:
    answer = call(server, "GET", "/api/im/sync" + query, token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"ok", "data"} and body["ok"] is True
    data: dict[str, Any] = body["data"]
    assert set(data) == {"events", "cursor", "hasMore"}
    return data


def head(server: ServerProcess) -> int:
    return server.sync_head()


def ws_connect(server: ServerProcess, token: str) -> websocket.WebSocket:
    ws = websocket.create_connection(f"{server.ws_url}/ws?token={token}", timeout=TIMEOUT)
    json.loads(ws.recv())  # authenticated / auth_success
    return ws


def recv_type(ws: websocket.WebSocket, wanted: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(ws.recv())
        if frame.get("type") == wanted:
            return frame


def sse_blocks(response: requests.Response) -> Iterator[dict[str, str]]:
    """The data-carrying blocks of an SSE stream as dicts of their fields."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


# ── the log's shape ──────────────────────────────────────────────────────


def test_direct_message_logs_two_conversation_creates_and_a_string_metadata(
    srv: ServerProcess,
) -> None:
    """A direct REST message: conversation.create once per participant, then message.new with
    the stored row (metadata a JSON string), oldest first, cursor the last seq."""
    (a_token, a_id), (b_token, b_id) = register(srv, "ann"), register(srv, "ben")
    sent = call(srv, "POST", f"/api/im/direct/{b_id}/messages", a_token, json={"content": "hi"})
    assert sent.status_code == 201
    conv = sent.json()["data"]["conversationId"]
    data = sync(srv, b_token, "?since=0")
    events = data["events"]
    assert all(set(e) == EVENT_KEYS for e in events)
    assert [e["type"] for e in events] == ["conversation.create"] * 2 + ["message.new"]
    assert (
        events[0]["data"]
        == events[1]["data"]
        == {
            "id": conv,
            "type": "direct",
            "participants": [a_id, b_id],
        }
    )
    message = events[2]["data"]
    assert set(message) == MESSAGE_KEYS | {"createdAt"}
    assert (message["content"], message["metadata"], message["parentId"]) == ("hi", "{}", None)
    assert message["id"] == sent.json()["data"]["message"]["id"]
    assert {e["conversationId"] for e in events} == {conv}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert (data["cursor"], data["hasMore"]) == (seqs[-1], False)
    assert sync(srv, a_token, "?since=0")["events"] == events  # the same log for both


def test_websocket_messages_are_logged_and_live_frames_carry_the_id_only(
    srv: ServerProcess,
) -> None:
    """message.send is logged; the live message.new has the message id (its key into the
    log) and, as on the real server, no seq."""
    token, _ = register(srv, "wsl")
    conv = "c-" + uuid.uuid4().hex[:8]
    ws = ws_connect(srv, token)
    try:
        ws.send(json.dumps({"type": "conversation.join", "payload": {"conversationId": conv}}))
        before = head(srv)
        send = {"conversationId": conv, "content": "over ws", "metadata": {"k": 1}}
        ws.send(json.dumps({"type": "message.send", "payload": send}))
        live = recv_type(ws, "message.new")
    finally:
        ws.close()
    assert "seq" not in live and "seq" not in live["payload"]
    assert live["payload"]["metadata"] == {"k": 1}
    after = sync(srv, token, f"?since={before}")["events"]
    assert [(e["type"], e["data"]["id"]) for e in after] == [("message.new", live["payload"]["id"])]
    assert after[0]["data"]["metadata"] == '{"k":1}'


def test_emitted_durable_events_are_logged_and_ephemeral_ones_are_not(
    srv: ServerProcess,
) -> None:
    """/_control/emit of message.edit / message.delete / task.notification writes the log;
    presence and typing do not."""
    token, user_id = register(srv, "emi")
    before = head(srv)
    srv.emit("message.edit", {"id": "m1", "conversationId": "c-x", "content": "new"}, to=user_id)
    srv.emit("presence.changed", {"userId": "u", "status": "online"}, to=user_id)
    srv.emit("message.delete", {"id": "m1", "conversationId": "c-x"}, to=user_id)
    srv.emit("typing.indicator", {"conversationId": "c-x", "userId": "u"}, to=user_id)
    srv.emit("task.notification", {"taskId": "t1", "conversationId": "c-x"}, to=user_id)
    events = sync(srv, token, f"?since={before}")["events"]
    assert [(e["type"], e["conversationId"]) for e in events] == [
        ("message.edit", "c-x"),
        ("message.delete", "c-x"),
        ("task.notification", None),
    ]
    assert events[0]["data"] == {"id": "m1", "conversationId": "c-x", "content": "new"}
    other_token, _ = register(srv, "oth")
    assert sync(srv, other_token, f"?since={before}")["events"] == []  # not theirs


# ── the real server's traps ──────────────────────────────────────────────


def test_cursor_echoes_since_past_the_head_and_limit_zero_says_has_more(
    srv: ServerProcess,
) -> None:
    token, user_id = register(srv, "trap")
    srv.emit("task.notification", {"taskId": "t"}, to=user_id)
    far = head(srv) + 99999
    assert sync(srv, token, f"?since={far}") == {"events": [], "cursor": far, "hasMore": False}
    assert sync(srv, token, "?since=0&limit=0") == {"events": [], "cursor": 0, "hasMore": True}
    assert sync(srv, token, f"?since={far}&limit=0")["hasMore"] is False
    assert sync(srv, token, "?since=0&limit=-3") == {"events": [], "cursor": 0, "hasMore": True}
    assert sync(srv, token, "?since=0abc")["cursor"] == head(srv)  # parseInt("0abc") is 0
    for query in ("?since=abc", "?since=", "?limit=many"):
        failed = call(srv, "GET", "/api/im/sync" + query, token)
        assert (failed.status_code, failed.json()) == (500, {"ok": False, "error": "Sync failed"})
    assert call(srv, "GET", "/api/im/sync").status_code == 401


def test_pages_of_at_most_500_with_has_more(srv: ServerProcess) -> None:
    """limit above 500 is 500; the default page is 100; paging by cursor sees every event once."""
    token, user_id = register(srv, "page")
    before = head(srv)
    for n in range(520):
        srv.emit("task.notification", {"taskId": f"t{n}"}, to=user_id)
    first = sync(srv, token, f"?since={before}&limit=100000")
    assert (len(first["events"]), first["hasMore"]) == (500, True)
    second = sync(srv, token, f"?since={first['cursor']}&limit=500")
    assert (len(second["events"]), second["hasMore"]) == (20, False)
    ids = [e["data"]["taskId"] for e in first["events"] + second["events"]]
    assert ids == [f"t{n}" for n in range(520)]
    default = sync(srv, token, f"?since={before}")
    assert (len(default["events"]), default["hasMore"]) == (100, True)


# ── docs dialect: SSE ids are log seqs ───────────────────────────────────


def test_docs_websocket_messages_are_logged_with_the_sse_id_as_seq(docs: ServerProcess) -> None:
    token, _ = register(docs, "dsa")
    conv = "d-" + uuid.uuid4().hex[:8]
    ws = ws_connect(docs, token)
    stream = requests.get(
        f"{docs.url}/api/im/events/stream?token={token}", stream=True, timeout=TIMEOUT
    )
    blocks = sse_blocks(stream)
    try:
        ws.send(json.dumps({"action": "send_message", "conversationId": conv, "content": "x"}))
        created, message = next(blocks), next(blocks)
    finally:
        ws.close()
        stream.close()
    events = sync(docs, token)["events"]
    assert [(e["type"], str(e["seq"])) for e in events] == [
        ("conversation.create", created["id"]),
        ("message.new", message["id"]),
    ]
    assert json.loads(message["data"])["id"] == events[1]["data"]["id"]


def test_docs_last_event_id_replays_then_goes_live_without_gap_or_duplicate(
    docs: ServerProcess,
) -> None:
    """Events emitted continuously while the stream resumes: every seq after Last-Event-ID
    arrives once, in order."""
    token, user_id = register(docs, "seam")
    for n in range(30):
        docs.emit("message.new", {"id": f"m{n}", "conversationId": "c-seam"}, to=user_id)
    resume_after = sync(docs, token)["events"][9]["seq"]
    stop = threading.Event()

    def keep_emitting() -> None:
        n = 30
        while not stop.is_set() and n < 130:
            docs.emit("message.new", {"id": f"m{n}", "conversationId": "c-seam"}, to=user_id)
            n += 1

    emitter = threading.Thread(target=keep_emitting)
    emitter.start()
    stream = requests.get(
        f"{docs.url}/api/im/events/stream?token={token}",
        headers={"Last-Event-ID": str(resume_after)},
        stream=True,
        timeout=TIMEOUT,
    )
    got: list[str] = []
    try:
        for block in sse_blocks(stream):
            got.append(json.loads(block["data"])["id"])
            if len(got) == 120:
                break
    finally:
        stop.set()
        emitter.join()
        stream.close()
    assert got == [f"m{n}" for n in range(10, 130)]


def test_no_history_fault_hides_the_log(server_factory: ServerFactory) -> None:
    """no-history: /sync is 404 and the docs SSE has no id: lines and ignores Last-Event-ID."""
    server = server_factory(dialect="docs", faults=["no-history"])
    token, user_id = register(server, "nohist")
    server.emit("task.updated", {"taskId": "old"}, to=user_id)
    missing = call(server, "GET", "/api/im/sync?since=0", token)
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "error": "Not found"})
    stream = requests.get(
        f"{server.url}/api/im/events/stream?token={token}",
        headers={"Last-Event-ID": "0"},
        stream=True,
        timeout=TIMEOUT,
    )
    try:
        server.emit("task.updated", {"taskId": "new"}, to=user_id)
        block = next(sse_blocks(stream))
    finally:
        stream.close()
    assert json.loads(block["data"])["taskId"] == "new" and "id" not in block
    server.set_faults([])
    assert call(server, "GET", "/api/im/sync?since=0", token).status_code == 200


def test_foreign_seqs_fault_puts_other_users_rows_between(server_factory: ServerFactory) -> None:
    """foreign-seqs=3: each row of the log follows three rows nobody can read, so a user's seqs
    jump by four, as on a busy server; the docs SSE ids are those seqs."""
    server = server_factory(dialect="docs", faults=["foreign-seqs=3"])
    token, user_id = register(server, "busy")
    server.emit("task.updated", {"taskId": "a"}, to=user_id)
    server.emit("task.updated", {"taskId": "b"}, to=user_id)
    events = sync(server, token, "?since=0")["events"]
    assert [e["seq"] for e in events] == [4, 8] and head(server) == 8
    assert [e["data"]["taskId"] for e in events] == ["a", "b"]
    bad = requests.post(
        server.url + "/_control/faults", json={"faults": ["foreign-seqs=1:2"]}, timeout=TIMEOUT
    )
    assert bad.status_code == 400


# ── idempotency keys ─────────────────────────────────────────────────────


def message_news(server: ServerProcess, token: str, conv: str) -> list[dict[str, Any]]:
    events = sync(server, token, "?since=0&limit=500")["events"]
    return [e for e in events if e["type"] == "message.new" and e["conversationId"] == conv]


def test_websocket_idempotency_key_rebroadcasts_the_stored_message(srv: ServerProcess) -> None:
    """A repeated metadata._idempotencyKey stores nothing: the stored message comes back as
    message.new with a new ackId and no isRetry; the log has it once."""
    token, _ = register(srv, "idw")
    conv = "c-" + uuid.uuid4().hex[:8]
    ws = ws_connect(srv, token)
    try:
        ws.send(json.dumps({"type": "conversation.join", "payload": {"conversationId": conv}}))
        frames = []
        for content in ("first", "second try"):
            payload = {
                "conversationId": conv,
                "content": content,
                "metadata": {"_idempotencyKey": "k1"},
            }
            ws.send(json.dumps({"type": "message.send", "payload": payload}))
            frames.append(recv_type(ws, "message.new"))
        other = {"conversationId": conv, "content": "other", "metadata": {"_idempotencyKey": "k2"}}
        ws.send(json.dumps({"type": "message.send", "payload": other}))
        frames.append(recv_type(ws, "message.new"))
    finally:
        ws.close()
    first, again, third = frames
    assert again["payload"] == first["payload"] and again["payload"]["content"] == "first"
    assert again["ackId"] != first["ackId"] and "isRetry" not in again
    assert third["payload"]["id"] != first["payload"]["id"]
    logged = message_news(srv, token, conv)
    assert [e["data"]["content"] for e in logged] == ["first", "other"]
    assert json.loads(logged[0]["data"]["metadata"]) == {"_idempotencyKey": "k1"}


@pytest.mark.parametrize("dialect", ["docs", "server"])
def test_rest_idempotency_key_is_per_conversation(
    server_factory: ServerFactory, dialect: str
) -> None:
    """X-Idempotency-Key: the same answer again and one stored message per conversation; the
    server dialect pushes message.new again (as api/messages.ts does), the docs one does not."""
    server = server_factory(dialect=dialect)
    (token, _), (peer_token, peer_id) = register(server, "idr"), register(server, "peer")
    first = call(
        server,
        "POST",
        f"/api/im/direct/{peer_id}/messages",
        token,
        json={"content": "once"},
        headers={"X-Idempotency-Key": "key-1"},
    )
    conv = first.json()["data"]["conversationId"]
    ws = ws_connect(server, peer_token)
    try:
        again = call(
            server,
            "POST",
            f"/api/im/messages/{conv}",
            token,
            json={"content": "once more"},
            headers={"X-Idempotency-Key": "key-1"},
        )
        assert again.status_code == first.status_code == 201
        assert again.json()["data"]["message"] == first.json()["data"]["message"]
        ws.settimeout(0.5)
        pushed = []
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            pushed.append(json.loads(ws.recv()))
    finally:
        ws.close()
    assert [p["payload"]["content"] for p in pushed] == (["once"] if dialect == "server" else [])
    assert [e["data"]["content"] for e in message_news(server, token, conv)] == ["once"]
    metadata = first.json()["data"]["message"]["metadata"]
    assert json.loads(metadata) == {"_idempotencyKey": "key-1"}
    group = "g-" + uuid.uuid4().hex[:6]
    if dialect == "server":  # posting needs membership there: join over WebSocket first
        joiner = ws_connect(server, token)
        joiner.send(json.dumps({"type": "conversation.join", "payload": {"conversationId": group}}))
        joiner.send(json.dumps({"type": "ping", "payload": {}}))
        recv_type(joiner, "pong")
        joiner.close()
    elsewhere = call(
        server,
        "POST",
        f"/api/im/messages/{group}",
        token,
        json={"content": "same key, other conversation"},
        headers={"X-Idempotency-Key": "key-1"},
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["data"]["message"]["id"] != first.json()["data"]["message"]["id"]
