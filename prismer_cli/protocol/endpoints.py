"""Where each endpoint lives, and the shapes of the REST requests and answers (docs/protocol.md).

GET  {base}/ws?token=T                           WebSocket, both dialects
GET  {base}/api/im/events/stream?token=T         SSE, docs dialect (named events)
GET  {base}/sse?token=T                          SSE, server dialect (envelopes)
POST {base}/api/im/messages/{conversationId}     {type, content, metadata?, parentId?}
POST {base}/api/im/conversations/{id}/read       (no body: marks everything read)
GET  {base}/api/im/me                            {data: {user: {id}}}
GET  {base}/api/im/sync?since=SEQ&limit=N         the event log (prismer_cli/listen/eventlog.py)
GET  {base}/api/im/users/{id}                    {data: {displayName, username}}: --pretty's names
GET  {base}/api/im/messages/{conversationId}?limit=N   the newest messages: chat --history
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

JSON = dict[str, Any]

WS_PATH = "/ws"
SSE_DOCS_PATH = "/api/im/events/stream"
SSE_SERVER_PATH = "/sse"
REST_PREFIX = "/api/im"
ME_PATH = f"{REST_PREFIX}/me"
SYNC_PATH = f"{REST_PREFIX}/sync"
IDEMPOTENCY_HEADER = "X-Idempotency-Key"


def message_path(conversation_id: str) -> str:
    return f"{REST_PREFIX}/messages/{quote(conversation_id, safe='')}"


def read_path(conversation_id: str) -> str:
    return f"{REST_PREFIX}/conversations/{quote(conversation_id, safe='')}/read"


def user_path(user_id: str) -> str:
    return f"{REST_PREFIX}/users/{quote(user_id, safe='')}"


def name_of_user(answer: JSON) -> str | None:
    """The display name (else the username) in the answer to GET /api/im/users/{id}."""
    data = answer.get("data", answer)
    if isinstance(data, dict) and isinstance(data.get("user"), dict):
        data = data["user"]
    for key in ("displayName", "username"):
        name = data.get(key) if isinstance(data, dict) else None
        if isinstance(name, str) and name:
            return name
    return None


def messages_of(answer: JSON) -> list[JSON]:
    """The messages in the answer to GET /api/im/messages/{id}: `{data: [...]}` or
    `{data: {messages: [...]}}`; oldest first, whatever order the server gave."""
    data = answer.get("data", answer)
    if isinstance(data, dict):
        data = data.get("messages")
    rows = [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    if len(rows) > 1 and str(rows[0].get("createdAt", "")) > str(rows[-1].get("createdAt", "")):
        rows.reverse()
    return rows


def message_body(content: str, message_type: str, extra: JSON) -> JSON:
    return {"type": message_type, "content": content, **extra}


def message_of(answer: JSON) -> JSON | None:
    """The stored message in a REST answer: `{data: {message}}` or `{message, routing}`."""
    data = answer.get("data", answer)
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, dict) else None


def user_id_of(answer: JSON) -> str | None:
    """The user id in the answer to GET /api/im/me."""
    data = answer.get("data", {})
    user = data.get("user", {}) if isinstance(data, dict) else {}
    user_id = user.get("id") if isinstance(user, dict) else None
    return user_id if isinstance(user_id, str) else None


def problem_of(answer: JSON) -> str | None:
    """The error message of a failed REST answer: `{error: {message}}`, `{error}` or `{message}`."""
    error = answer.get("error") or answer.get("message")
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if error else None
