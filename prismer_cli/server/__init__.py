"""``prismer-rt serve``: a local stand-in for the Prismer Cloud real-time server.

It speaks either dialect of protocol.md on real sockets, so the CLI, its tests and users'
scripts can run against something that behaves like the live service without an account:

- ``docs``: the public cookbook page's protocol (``auth_success``, ``action`` commands,
  named SSE events with ``id:`` lines), see :mod:`prismer_cli.server.docs`;
- ``server``: what the open-source Prismer Cloud server does on the wire (``authenticated``,
  envelopes with ``timestamp``/``ackId``, unnamed SSE frames), see
  :mod:`prismer_cli.server.serverdialect`.

Both dialects share the REST endpoints (:mod:`~prismer_cli.server.rest`), the in-memory users
and conversations (:mod:`~prismer_cli.server.state`), injectable faults
(:mod:`~prismer_cli.server.faults`) and the ``/_control`` debug endpoints
(:mod:`~prismer_cli.server.control`).

This module only holds the options and the entry point, so importing it stays cheap: aiohttp
is imported when the server actually starts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerOptions:
    """Everything ``prismer-rt serve`` can be told; the defaults are the documented ones."""

    host: str = "127.0.0.1"
    port: int = 8765
    dialect: str = "docs"  # "docs" | "server"
    tokens: tuple[str, ...] = ()  # each "TOKEN" or "TOKEN=NAME"; empty = open mode
    faults: tuple[str, ...] = ()  # fault specs, see prismer_cli.server.faults
    auth_timeout: float = 10.0  # server dialect: close 4001 after this without auth
    ack_timeout: float = 5.0  # server dialect: unacked frame queued after this
    heartbeat: float = 30.0  # server dialect SSE ": heartbeat" interval
    token_ttl: float = 604800.0  # lifetime of issued JWTs (prismer_cli.server.tokens)


def serve(options: ServerOptions) -> int:
    """Run the server until SIGINT/SIGTERM; return the process exit code.

    0 after a clean stop, 2 for invalid options, 4 when the address cannot be bound.
    """
    from prismer_cli.server.runner import run_blocking

    return run_blocking(options)


__all__ = ["ServerOptions", "serve"]
