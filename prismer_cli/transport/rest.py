"""REST commands (protocol.md, server dialect; also used when no WebSocket can be had).

    POST {base}/api/im/messages/{conversationId}   {type, content, metadata?, parentId?}
    POST {base}/api/im/conversations/{id}/read      (no body: marks everything read)
Every message carries an X-Idempotency-Key that stays the same across retries, so a command
retried after a timeout is never posted twice. 401 means the token was refused (exit 3); any
other 4xx, 403 included, rejects that one command (exit 5).
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import requests

from prismer_cli.backoff import Policy, wait_for
from prismer_cli.errors import AuthError, CommandRejected, ConnectError
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import REST_PREFIX
from prismer_cli.redact import redact
from prismer_cli.transport.base import Endpoint, retry_after
from prismer_cli.transport.urls import endpoint as endpoint_url

RETRIES = 3


class RestClient:
    def __init__(self, endpoint: Endpoint, log: Log, policy: Policy | None = None) -> None:
        self._endpoint = endpoint
        self._log = log
        self._policy = policy or Policy(max_retries=RETRIES)
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {endpoint.token}"

    def send_message(
        self, conversation_id: str, content: str, message_type: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"type": message_type, "content": content, **extra}
        path = f"{REST_PREFIX}/messages/{quote(conversation_id, safe='')}"
        key = str(uuid.uuid4())
        return self._post(path, body, {"X-Idempotency-Key": key})

    def mark_read(self, conversation_id: str) -> dict[str, Any]:
        path = f"{REST_PREFIX}/conversations/{quote(conversation_id, safe='')}/read"
        return self._post(path, None, {})

    def whoami(self) -> str | None:
        """The user id behind the token, from GET /api/im/me, or None if the server won't say."""
        try:
            answer = self._session.get(
                endpoint_url(self._endpoint.url, f"{REST_PREFIX}/me"),
                timeout=self._endpoint.timeouts.connect,
            )
            data = answer.json().get("data", {}) if answer.ok else {}
        except (requests.RequestException, ValueError, AttributeError):
            return None
        user = data.get("user", {}) if isinstance(data, dict) else {}
        user_id = user.get("id") if isinstance(user, dict) else None
        return user_id if isinstance(user_id, str) else None

    def _post(self, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """POST with retries on network errors, 5xx and 429; the answer's JSON on 2xx."""
        url = endpoint_url(self._endpoint.url, path)
        retry = 0
        while True:
            try:
                answer = self._session.post(
                    url, json=body, headers=headers, timeout=self._endpoint.timeouts.connect
                )
            except requests.RequestException as exc:
                problem, wait = (
                    f"cannot reach the server: {redact(str(exc), self._endpoint.token)}",
                    None,
                )
            else:
                if answer.status_code < 300:
                    return _json(answer)
                problem = _problem(answer)
                if answer.status_code == 401:
                    raise AuthError(f"the server rejected the token ({problem})")
                # 403 on a command is about that command (e.g. "Not a participant"): it is
                # rejected like any other 4xx, and the commands after it still go out.
                if answer.status_code < 500 and answer.status_code != 429:
                    raise CommandRejected(problem)
                wait = retry_after(answer.headers)
            retry += 1
            if not self._policy.allows(retry):
                raise ConnectError(problem)
            delay = wait_for(self._policy.delay(retry), wait)
            self._log.info(f"{problem}; retrying in {delay:.1f} s")
            time.sleep(delay)

    def close(self) -> None:
        self._session.close()


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _problem(answer: requests.Response) -> str:
    data = _json(answer)
    error = data.get("error") or data.get("message")
    if isinstance(error, dict):
        error = error.get("message")
    return f"HTTP {answer.status_code}" + (f": {error}" if error else "")


def message_of(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The stored message in a REST answer: `{data: {message}}` or `{message, routing}`."""
    data = answer.get("data", answer)
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, dict) else None
