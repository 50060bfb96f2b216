"""HTTP answers in the real server's style: compact JSON, ``application/json`` (no charset)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from prismer_cli.server.formats import dumps


def json_answer(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def json_error(message: str, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    """``{"ok": false, "error": message}``, the real server's error shape."""
    return json_answer({"ok": False, "error": message}, status=status, headers=headers)
