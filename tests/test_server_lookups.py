"""The stand-in server's look-ups through HTTP: ``GET /api/im/conversations/{id}``,
``/users/{id}`` and ``/messages/{conversationId}``, in the shapes of the real server's
``api/conversations.ts``, ``api/users.ts`` and ``api/messages.ts`` (server dialect), and 404 in
the docs dialect."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.api import call
from tests.support.serverfixture import (
    ServerFactory,
    ServerProcess,
    running_server,
    server_factory,
)

__all__ = ["server_factory"]  # the fixture, imported so pytest finds it here

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROW_KEYS = [
    "id",
    "type",
    "title",
    "description",
    "status",
    "metadata",
    "createdById",
    "workspaceId",
    "lastMessageAt",
    "createdAt",
    "updatedAt",
]
PROFILE_KEYS = ["id", "username", "displayName", "role", "agentType", "avatarUrl", "createdAt"]


@dataclass(frozen=True)
class Agent:
    token: str
    id: str
    username: str


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("lookups"), dialect="server") as server:
        yield server


def register(server: ServerProcess, name: str, kind: str = "agent") -> Agent:
    username = f"{name}_{uuid.uuid4().hex[:6]}"
    body = {"type": kind, "username": username, "displayName": name.title()}
    answer = call(server, "POST", "/api/im/register", json=body)
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    return Agent(data["token"], data["imUserId"], username)


def direct(server: ServerProcess, sender: Agent, to: Agent, content: str, **body: Any) -> Any:
    """Post a direct message; the answer's data (conversationId, message)."""
    path = f"/api/im/direct/{to.id}/messages"
    answer = call(server, "POST", path, sender.token, json={"content": content, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


def get(server: ServerProcess, path: str, agent: Agent | None) -> tuple[int, Any]:
    answer = call(server, "GET", path, agent.token if agent else None)
    return answer.status_code, answer.json()


def test_conversation_lookup_has_the_row_and_the_participants(srv: ServerProcess) -> None:
    """GET /conversations/{id}: the row, then participants with role, joinedAt and user."""
    alice, bob = register(srv, "alice"), register(srv, "bob", "human")
    conversation = direct(srv, alice, bob, "hello")["conversationId"]
    status, body = get(srv, f"/api/im/conversations/{conversation}", bob)
    assert status == 200, body
    assert body["ok"] is True and list(body) == ["ok", "data"]
    data = body["data"]
    assert list(data) == [*ROW_KEYS, "participants"]
    assert data["id"] == conversation and data["type"] == "direct"
    assert data["createdById"] == alice.id and data["title"] is None
    assert json.loads(data["metadata"]) == {"autoCreated": True}
    assert ISO.match(data["lastMessageAt"]) and ISO.match(data["createdAt"])
    owner, member = data["participants"]
    assert [list(p) for p in (owner, member)] == [["id", "role", "joinedAt", "user"]] * 2
    assert (owner["role"], member["role"]) == ("owner", "member")
    assert owner["id"] != member["id"] and ISO.match(member["joinedAt"])
    assert owner["user"] == {
        "id": alice.id,
        "username": alice.username,
        "displayName": "Alice",
        "role": "agent",
        "agentType": "assistant",
    }
    assert member["user"] == {
        "id": bob.id,
        "username": bob.username,
        "displayName": "Bob",
        "role": "human",
        "agentType": None,
    }
    again = get(srv, f"/api/im/conversations/{conversation}", alice)[1]
    assert again["data"]["participants"] == data["participants"]  # stable ids and times


def test_conversation_lookup_refuses_outsiders_and_unknown_ids(srv: ServerProcess) -> None:
    """403 for a non-participant, 404 for an unknown conversation, 401 without a token."""
    alice, bob, carol = register(srv, "alice"), register(srv, "bob"), register(srv, "carol")
    conversation = direct(srv, alice, bob, "hello")["conversationId"]
    path = f"/api/im/conversations/{conversation}"
    assert get(srv, path, carol) == (403, {"ok": False, "error": "Not a participant"})
    assert get(srv, "/api/im/conversations/conv_nope", carol) == (
        404,
        {"ok": False, "error": "Conversation not found"},
    )
    status, body = get(srv, path, None)
    assert status == 401 and body["ok"] is False


def test_user_lookup_answers_the_profile_by_id_only(srv: ServerProcess) -> None:
    """GET /users/{id}: {id, username, displayName, role, agentType, avatarUrl, createdAt}."""
    alice, bob = register(srv, "alice"), register(srv, "bob", "human")
    status, body = get(srv, f"/api/im/users/{bob.id}", alice)
    assert status == 200, body
    data = body["data"]
    assert list(data) == PROFILE_KEYS
    assert data["id"] == bob.id and data["username"] == bob.username
    assert (data["displayName"], data["role"], data["agentType"]) == ("Bob", "human", None)
    assert data["avatarUrl"] is None and ISO.match(data["createdAt"])
    agent = get(srv, f"/api/im/users/{alice.id}", bob)[1]["data"]
    assert (agent["role"], agent["agentType"]) == ("agent", "assistant")
    missing = {"ok": False, "error": "User not found"}
    assert get(srv, f"/api/im/users/{bob.username}", alice) == (404, missing)
    assert get(srv, "/api/im/users/usr_nobody", alice) == (404, missing)
    assert get(srv, f"/api/im/users/{bob.id}", None)[0] == 401


def test_message_history_is_the_newest_n_oldest_first(srv: ServerProcess) -> None:
    """GET /messages/{id}?limit=N: the newest N as the REST posts answered them, oldest first,
    metadata a JSON string, with meta {total, pageSize}; before/after page from a message."""
    alice, bob = register(srv, "alice"), register(srv, "bob")
    posted = [direct(srv, alice, bob, f"m{n}", metadata={"n": n})["message"] for n in range(5)]
    conversation = posted[0]["conversationId"]
    path = f"/api/im/messages/{conversation}"
    status, body = get(srv, f"{path}?limit=3", bob)
    assert status == 200, body
    assert list(body) == ["ok", "data", "meta"]
    assert body["data"] == posted[2:]
    assert [json.loads(m["metadata"]) for m in body["data"]] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert body["meta"] == {"total": 5, "pageSize": 3}
    assert get(srv, path, alice)[1]["data"] == posted  # default: 50
    assert get(srv, f"{path}?limit=2&before={posted[3]['id']}", bob)[1]["data"] == posted[1:3]
    assert get(srv, f"{path}?limit=2&after={posted[1]['id']}", bob)[1]["data"] == posted[2:4]
    assert get(srv, f"{path}?limit=0", bob)[1]["data"] == []


def test_message_history_refuses_outsiders(srv: ServerProcess) -> None:
    """403 Not a participant, also for an unknown conversation (participation comes first)."""
    alice, bob, carol = register(srv, "alice"), register(srv, "bob"), register(srv, "carol")
    conversation = direct(srv, alice, bob, "hello")["conversationId"]
    refused = (403, {"ok": False, "error": "Not a participant"})
    assert get(srv, f"/api/im/messages/{conversation}", carol) == refused
    assert get(srv, "/api/im/messages/conv_nope", carol) == refused


def test_docs_dialect_has_no_lookups(server_factory: ServerFactory) -> None:
    """The docs page describes none of them: 404 Not found, whoever asks."""
    docs = server_factory(dialect="docs")
    alice, bob = register(docs, "alice"), register(docs, "bob")
    conversation = direct(docs, alice, bob, "hello")["conversationId"]
    for path in (
        f"/api/im/conversations/{conversation}",
        f"/api/im/users/{bob.id}",
        f"/api/im/messages/{conversation}?limit=5",
    ):
        assert get(docs, path, alice) == (404, {"ok": False, "error": "Not found"}), path
