"""REST commands (docs/protocol.md, server dialect; also used when no WebSocket can be had).

Every message carries an idempotency key that stays the same across retries, so a command
retried after a timeout is never posted twice. 401 means the token was refused (exit 3); any
other 4xx, 403 included, rejects that one command (exit 5); network errors, 5xx and 429 are
retried (retry.py).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import requests

from prismer_cli.errors import AuthError, CommandRejected, ConnectError
from prismer_cli.log import Log
from prismer_cli.protocol.endpoints import (
    IDEMPOTENCY_HEADER,
    ME_PATH,
    REST_PREFIX,
    message_body,
    message_path,
    messages_of,
    name_of_user,
    problem_of,
    read_path,
    user_id_of,
    user_path,
)
from prismer_cli.redact import redact
from prismer_cli.retry import Deadline, Policy, Retries, retry_after_of, retryable
from prismer_cli.transport.base import Endpoint, retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.urls import endpoint as endpoint_url
from prismer_cli.transport.watchdog import Watch
from prismer_cli.tuning import SEND_RETRIES


class RestClient:
    def __init__(self, endpoint: Endpoint, log: Log, policy: Policy | None = None) -> None:
        self._endpoint = endpoint
        self._log = log
        self._policy = policy or Policy(max_retries=SEND_RETRIES)
        self.not_after = endpoint.deadline  # no request's attempts go past it
        self._session = traced(requests.Session(), endpoint.trace)
        self._session.headers["Authorization"] = f"Bearer {endpoint.token}"
        self._watch = Watch()  # each request ends by its deadline, however slow the answer

    def send_message(
        self,
        conversation_id: str,
        content: str,
        message_type: str,
        extra: dict[str, Any],
        key: str = "",
    ) -> dict[str, Any]:
        """POST the message with its idempotency key (a fresh one if none is given)."""
        key = key or str(uuid.uuid4())
        body = message_body(content, message_type, extra)
        return self._post(message_path(conversation_id), body, {IDEMPOTENCY_HEADER: key})

    def mark_read(self, conversation_id: str) -> dict[str, Any]:
        return self._post(read_path(conversation_id), None, {})

    def whoami(self) -> str | None:
        """The user id behind the token, from GET /api/im/me, or None if the server won't say."""
        wait = self._endpoint.cut().timeouts.connect
        try:
            with self._watch.step(self._endpoint.deadline.within(wait).at, "GET /api/im/me"):
                answer = self._session.get(endpoint_url(self._endpoint.url, ME_PATH), timeout=wait)
                data = answer.json() if answer.ok else {}
        except (requests.RequestException, ValueError, ConnectError):
            return None
        return user_id_of(data) if isinstance(data, dict) else None

    def display_name(self, user_id: str, timeout: float) -> str | None:
        """A user's display name (else username) from GET /api/im/users/{id}; None when the
        server does not know the user; ConnectError when it cannot say (no such endpoint)."""
        return name_of_user(self._get(user_path(user_id), {}, timeout))

    def history(self, conversation_id: str, limit: int, timeout: float) -> list[dict[str, Any]]:
        """The newest `limit` messages of a conversation, oldest first; ConnectError when the
        server has no such endpoint (404) or cannot answer."""
        path = message_path(conversation_id)
        return messages_of(self._get(path, {"limit": str(limit)}, timeout))

    def _get(self, path: str, params: dict[str, str], timeout: float) -> dict[str, Any]:
        try:
            answer = self._session.get(
                endpoint_url(self._endpoint.url, path), params=params, timeout=timeout
            )
        except requests.RequestException as exc:
            host = urlsplit(self._endpoint.url).hostname
            raise ConnectError(redact(reason(exc, host), self._endpoint.token)) from None
        if answer.status_code == 404 and path.startswith(f"{REST_PREFIX}/users/"):
            return {}
        if answer.status_code >= 300:
            raise ConnectError(f"HTTP {answer.status_code}")
        return _json(answer)

    def _post(self, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """POST with retries on network errors, 5xx and 429; the answer's JSON on 2xx."""
        url = endpoint_url(self._endpoint.url, path)
        retries = Retries(self._policy)
        deadline = self.not_after.within(self._policy.give_up_after)
        while True:
            try:
                return self._post_once(url, body, headers, deadline)
            except ConnectError as exc:
                if not (retryable(exc) and retries.failed()):
                    raise
                delay = retries.delay(retry_after_of(exc))
                self._log.info(f"{exc}; retrying in {delay:.1f} s")
                if not deadline.sleep(delay):
                    raise

    def _post_once(
        self, url: str, body: Any, headers: dict[str, str], deadline: Deadline
    ) -> dict[str, Any]:
        wait = deadline.cut(self._endpoint.timeouts.connect)
        host = urlsplit(self._endpoint.url).hostname
        try:
            with self._watch.step(deadline.within(wait).at, f"POST to {host}"):
                answer = self._session.post(url, json=body, headers=headers, timeout=wait)
        except requests.RequestException as exc:
            words = reason(exc, host)
            words = words if words.startswith("cannot ") else f"cannot reach {host}: {words}"
            problem = redact(words, self._endpoint.token)
            raise ConnectError(problem) from None
        if answer.status_code < 300:
            return _json(answer)
        problem = f"HTTP {answer.status_code}"
        detail = problem_of(_json(answer))
        if detail:
            problem += f": {detail}"
        if answer.status_code == 401:
            raise AuthError(f"the server rejected the token ({problem})")
        # 403 on a command is about that command (e.g. "Not a participant"): it is
        # rejected like any other 4xx, and the commands after it still go out.
        if answer.status_code < 500 and answer.status_code != 429:
            raise CommandRejected(problem)
        raise ConnectError(problem, retry_after=retry_after(answer.headers))

    def close(self) -> None:
        self._session.close()


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
