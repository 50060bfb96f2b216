"""Base URL handling: one base URL gives the WebSocket, SSE and REST addresses."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from prismer_cli.errors import UsageError
from prismer_cli.protocol.endpoints import WS_PATH

_TO_HTTP = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def http_base(url: str) -> str:
    """Normalise a base URL (http, https, ws or wss; a trailing /ws is dropped) to http(s)."""
    parts = urlsplit(url.strip())
    scheme = _TO_HTTP.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise UsageError(f"not a usable URL: {url!r} (expected http(s):// or ws(s)://host)")
    path = parts.path.rstrip("/")
    if path.endswith(WS_PATH):
        path = path[: -len(WS_PATH)]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def ws_url(base: str, token: str) -> str:
    http = http_base(base)
    scheme = "wss" if http.startswith("https:") else "ws"
    return f"{scheme}{http[http.index(':') :]}{WS_PATH}?token={quote(token, safe='')}"


def endpoint(base: str, path: str) -> str:
    return http_base(base) + path
