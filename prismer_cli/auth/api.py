"""The server's token endpoints (docs/protocol.md "Tokens"), over requests.

POST {base}/api/im/token/refresh   Bearer <token>  -> {ok, data: {token, expiresIn}}
POST {base}/api/im/register        {type, username, displayName} -> 201 {ok, data: {token, ...}}
GET  {base}/api/im/me              Bearer <token>  -> {ok, data: {user: {id, username, ...}}}

An answer the server means (4xx but 429) raises Refused with its status; network errors, 5xx
and 429 raise ConnectError, worth another try later. The token is never part of a message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prismer_cli.errors import ConnectError
from prismer_cli.protocol.endpoints import ME_PATH, REST_PREFIX, problem_of
from prismer_cli.redact import redact
from prismer_cli.transport.base import retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.urls import endpoint as endpoint_url
from prismer_cli.transport.watchdog import Watch

if TYPE_CHECKING:
    from prismer_cli.transport.trace import Tracer

REFRESH_PATH = f"{REST_PREFIX}/token/refresh"
REGISTER_PATH = f"{REST_PREFIX}/register"


class Refused(Exception):
    """The server answered 4xx (not 429): it means it; `status` and a message for people."""

    def __init__(self, status: int, problem: str) -> None:
        super().__init__(f"HTTP {status}" + (f": {problem}" if problem else ""))
        self.status = status


def _call(
    method: str,
    url: str,
    path: str,
    *,
    token: str | None,
    body: Any,
    timeout: float,
    trace: Tracer | None = None,
) -> dict[str, Any]:
    """One request, answer included, within `timeout` however slowly it comes (watchdog.py)."""
    import requests  # here: ~60 ms, paid only by a command that does call the server's REST API

    from prismer_cli.transport.tracehttp import traced  # over requests, so here too

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    session = traced(requests.Session(), trace)  # as requests.request, traced or not
    try:
        with Watch().step(time.monotonic() + timeout, f"{method} {path}", timeout):
            answer = session.request(
                method, endpoint_url(url, path), json=body, headers=headers, timeout=timeout
            )
    except requests.RequestException as exc:
        host = urlsplit(url).hostname
        raise ConnectError(f"cannot reach {host}: {redact(reason(exc, host), token)}") from None
    finally:
        session.close()
    try:
        data = answer.json()
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else {}
    status = answer.status_code
    if status < 300:
        return data
    problem = redact(problem_of(data) or "", token)
    if status >= 500 or status == 429:
        message = f"HTTP {status}" + (f": {problem}" if problem else "")
        raise ConnectError(message, retry_after=retry_after(answer.headers))
    raise Refused(status, problem)


def _data(answer: dict[str, Any]) -> dict[str, Any]:
    data = answer.get("data")
    return data if isinstance(data, dict) else {}


def refresh(url: str, token: str, timeout: float, trace: Tracer | None = None) -> str:
    """A new token for `token` (expired or not); Refused or ConnectError."""
    answer = _call("POST", url, REFRESH_PATH, token=token, body=None, timeout=timeout, trace=trace)
    new = _data(answer).get("token")
    if not isinstance(new, str) or not new:
        raise Refused(200, "the answer holds no token")
    return new


def register(
    url: str, body: dict[str, Any], timeout: float, trace: Tracer | None = None
) -> dict[str, Any]:
    """The `data` of a successful registration (with its token); Refused or ConnectError."""
    answer = _call("POST", url, REGISTER_PATH, token=None, body=body, timeout=timeout, trace=trace)
    data = _data(answer)
    if not isinstance(data.get("token"), str) or not data["token"]:
        raise Refused(200, "the answer holds no token")
    return data


def me(url: str, token: str, timeout: float, trace: Tracer | None = None) -> dict[str, Any]:
    """The `data` of GET /api/im/me (`user`, `stats`, ...); Refused or ConnectError."""
    return _data(_call("GET", url, ME_PATH, token=token, body=None, timeout=timeout, trace=trace))
