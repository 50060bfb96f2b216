"""What the server saw, for ``GET /_control/log``: tests and users assert on it.

Each record is a JSON object with at least ``t`` (monotonic seconds) and ``kind``:

- ``rest``: a REST request (``method``, ``path``, ``status``, ``user``);
- ``ws_connect`` / ``sse_connect``: a WebSocket or SSE connection attempt (``status``,
  ``user`` or null, ``conn``);
- ``ws_frame_in``: a frame a client sent (``frame``: the parsed JSON, or ``text`` when it was
  not JSON), with ``conn`` and ``user``;
- ``ws_close`` / ``sse_close``: a connection ended (``code`` for WebSockets);
- ``refused``: a request turned away by a fault (``fault``, ``status``);
- ``fault``: a fault acting on a live connection (``fault``, ``conn``);
- ``evicted``: a connection closed to make room for the user's sixth (``conn``, ``user``);
- ``oversized``: a WebSocket message over ``--max-message-bytes`` closed its connection
  with 1009 (``conn``, ``user``, ``limit``);
- ``faults``: the faults were replaced through ``/_control/faults`` (``faults``).

``headers`` holds ``Last-Event-ID`` and ``X-Idempotency-Key`` when the request had them.
Tokens never appear: ``token=`` query values are ``***`` and so is every ``token`` field of a
recorded frame, parsed or not.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from prismer_cli.server.redaction import redact, redact_frame

LOGGED_HEADERS = ("Last-Event-ID", "X-Idempotency-Key")
MAX_RECORDS = 10_000


def logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in LOGGED_HEADERS if name in headers}


class ControlLog:
    """A bounded list of records, oldest first."""

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=limit)

    def add(self, kind: str, **fields: Any) -> None:
        record: dict[str, Any] = {"t": round(time.monotonic(), 6), "kind": kind}
        for name, value in fields.items():
            if name in ("path", "text") and isinstance(value, str):
                value = redact(value)
            elif name == "frame":
                value = redact_frame(value)
            record[name] = value
        self._records.append(record)

    def records(self) -> list[dict[str, Any]]:
        return list(self._records)
