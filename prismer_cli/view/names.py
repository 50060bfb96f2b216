"""Senders' names for the pretty view: the user id looked up once (GET /api/im/users/{id}).

Each id is asked at most once; a server that cannot answer (no such endpoint, a network error)
is not asked again in this run, and the id is shown instead. A look-up is bounded by a short
timeout: it delays one line, once per sender, never the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prismer_cli.errors import PrismerError

if TYPE_CHECKING:
    from prismer_cli.log import Log
    from prismer_cli.transport import Endpoint
    from prismer_cli.transport.rest import RestClient

LOOKUP_TIMEOUT = 2.0


class UserNames:
    def __init__(self, lookup: Callable[[str], str | None], known: dict[str, str] | None = None):
        self._lookup = lookup
        self._names: dict[str, str | None] = dict(known or {})
        self._working = True

    def learn(self, user_id: str | None, name: str | None) -> None:
        if user_id and name:
            self._names[user_id] = name

    def __call__(self, user_id: str) -> str | None:
        if user_id in self._names:
            return self._names[user_id]
        if not self._working or user_id in (".", "..") or "/" in user_id:
            return None
        try:
            name = self._lookup(user_id)
        except PrismerError:
            self._working = False
            return None
        self._names[user_id] = name
        return name


class RestNames:
    """The look-up over REST, its client opened on first use."""

    def __init__(self, endpoint: Endpoint, log: Log) -> None:
        self._endpoint = endpoint
        self._log = log
        self._client: RestClient | None = None

    def __call__(self, user_id: str) -> str | None:
        if self._client is None:
            from prismer_cli.transport.rest import RestClient

            self._client = RestClient(self._endpoint, self._log)
        return self._client.display_name(user_id, LOOKUP_TIMEOUT)
