"""``prismer-rt serve``: a local stand-in for the Prismer Cloud real-time server.

It speaks either dialect of docs/protocol.md on real sockets, so the CLI, its tests and users'
scripts can run against something that behaves like the live service without an account:

- ``docs``: the public cookbook page's protocol (``auth_success``, ``action`` commands,
  named SSE events with ``id:`` lines), see :mod:`prismer_cli.server.dialect_docs`;
- ``server``: what the open-source Prismer Cloud server does on the wire (``authenticated``,
  envelopes with ``timestamp``/``ackId``, unnamed SSE frames), see
  :mod:`prismer_cli.server.dialect_server`.

Both dialects share the REST endpoints (:mod:`~prismer_cli.server.rest`), the in-memory users
and conversations (:mod:`~prismer_cli.server.state`), injectable faults
(:mod:`~prismer_cli.server.faults`) and the ``/_control`` debug endpoints
(:mod:`~prismer_cli.server.control`).

The options are declared once, as the Typer command
:func:`~prismer_cli.server.command.serve_command` (``prismer-rt serve`` and
``python -m prismer_cli.server`` both run it), which fills a
:class:`~prismer_cli.server.options.ServerOptions`. Importing this package stays cheap: aiohttp
is imported when the server actually starts. The server imports nothing from the client.
"""

from __future__ import annotations

from prismer_cli.server.options import ServerOptions


def serve(options: ServerOptions) -> int:
    """Run the server until SIGINT/SIGTERM; return the process exit code.

    0 after a clean stop, 2 for invalid options, 4 when the address cannot be bound.
    """
    from prismer_cli.server.runner import run_blocking

    return run_blocking(options)


__all__ = ["ServerOptions", "serve"]
