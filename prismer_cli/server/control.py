"""``/_control``: debug endpoints that exist only on this local server; they need no token.

- ``POST /_control/emit`` ``{"type": T, "payload": {...}, "to": USER_ID | null}`` pushes any
  event through the normal delivery path (so SSE ids and ackIds apply), to one user's
  connections or, with ``to`` null, to every connected user. Answers
  ``{"ok": true, "delivered": <connections>}``. Durable types are written to the event log
  first, one row per target user (see :mod:`~prismer_cli.server.synclog`).
- ``GET /_control/log``: the list of records of :mod:`~prismer_cli.server.eventlog`.
- ``GET /_control/sync-head``: ``{"ok": true, "head": <last seq of the event log, 0 if
  empty>}`` (see :mod:`~prismer_cli.server.synclog`).
- ``POST /_control/faults`` ``{"faults": [SPEC, ...]}`` replaces the active faults (see
  :mod:`~prismer_cli.server.faults`); ``GET /_control/faults`` shows them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from prismer_cli.server.context import Dialect, ServerContext
from prismer_cli.server.faults import FaultSpecError
from prismer_cli.server.responses import json_answer, json_error


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ControlApi:
    def __init__(self, ctx: ServerContext, dialect: Dialect) -> None:
        self._ctx = ctx
        self._dialect = dialect

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_control/emit", self.emit),
            web.get("/_control/log", self.log),
            web.get("/_control/sync-head", self.sync_head),
            web.get("/_control/faults", self.faults),
            web.post("/_control/faults", self.set_faults),
        ]

    async def emit(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None or not isinstance(body.get("type"), str) or not body["type"]:
            return json_error('expected {"type": T, "payload": {...}, "to": USER_ID | null}', 400)
        to = body.get("to")
        if to is not None and not isinstance(to, str):
            return json_error('"to" must be a user id or null', 400)
        delivered = self._dialect.emit(body["type"], body.get("payload", {}), to)
        return json_answer({"ok": True, "delivered": delivered})

    async def log(self, request: web.Request) -> web.StreamResponse:
        return json_answer(self._ctx.log.records())

    async def sync_head(self, request: web.Request) -> web.StreamResponse:
        return json_answer({"ok": True, "head": self._ctx.store.sync_log.head})

    async def faults(self, request: web.Request) -> web.StreamResponse:
        return json_answer({"ok": True, "faults": self._ctx.faults.specs()})

    async def set_faults(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        specs = body.get("faults") if body is not None else None
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            return json_error('expected {"faults": [SPEC, ...]}', 400)
        try:
            self._ctx.faults.replace(specs)
        except FaultSpecError as exc:
            return json_error(str(exc), 400)
        self._ctx.log.add("faults", faults=self._ctx.faults.specs())
        return json_answer({"ok": True, "faults": self._ctx.faults.specs()})
