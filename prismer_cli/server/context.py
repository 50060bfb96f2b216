"""What every handler of one running server shares (:class:`ServerContext`), and what a
dialect must provide (:class:`DialectHandlers`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from prismer_cli.server.control_log import ControlLog
from prismer_cli.server.faults import FaultState
from prismer_cli.server.links import Hub
from prismer_cli.server.options import ServerOptions
from prismer_cli.server.records import Conversation, Message
from prismer_cli.server.state import Store


@dataclass
class ServerContext:
    """The state of one server, owned by its aiohttp application."""

    options: ServerOptions
    store: Store
    faults: FaultState
    log: ControlLog = field(default_factory=ControlLog)
    hub: Hub = field(default_factory=Hub)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class DialectHandlers(Protocol):
    """The dialect-specific half of the server: sockets, event shapes, REST leniency."""

    name: str

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``."""
        ...

    async def sse(self, request: web.Request) -> web.StreamResponse:
        """The dialect's SSE endpoint (``/api/im/events/stream`` or ``/sse``)."""
        ...

    def unknown_conversation(self, conversation_id: str, user_id: str) -> Conversation | None:
        """A REST post to an unknown conversation: create it (docs) or None for 404."""
        ...

    def may_post(self, conversation: Conversation, user_id: str) -> bool:
        """Whether a REST post from a non-participant is accepted (then they join)."""
        ...

    def message_posted(
        self, conversation: Conversation, message: Message, *, direct_to: str | None
    ) -> None:
        """Deliver a message stored by a REST call."""
        ...

    def conversation_read(
        self, conversation: Conversation, user_id: str, up_to: str | None
    ) -> None:
        """React to ``POST /conversations/{id}/read``."""
        ...

    def emit(self, event_type: str, payload: Any, to: str | None) -> int:
        """``/_control/emit``: push an event; return how many connections got it."""
        ...

    def close(self) -> None:
        """Stop timers at shutdown."""
        ...


class Endpoints:
    """A group of HTTP endpoints of one server (REST, look-ups, ``/_control``): what its
    handlers share, and the routes it adds to the application."""

    def __init__(self, ctx: ServerContext, dialect: DialectHandlers) -> None:
        self._ctx = ctx
        self._dialect = dialect

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError
