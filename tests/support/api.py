"""Talking to the stand-in server directly, as the server tests do: one HTTP call, and a JWT
that no server signed (the stand-in without --token does not check signatures)."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from tests.support.serverfixture import ServerProcess

TIMEOUT = 5.0


def call(
    server: ServerProcess, method: str, path: str, token: str | None = None, **kwargs: Any
) -> requests.Response:
    """One HTTP request to the server, with the token as a Bearer header when given."""
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, server.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def crafted(claims: dict[str, Any]) -> str:
    """A JWT-shaped token with these claims and a signature no server made."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.forged"
