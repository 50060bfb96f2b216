"""The one declaration of ``prismer-rt serve``'s options: the Typer command :func:`serve_command`.

``prismer-rt serve`` registers this function in the client's Typer app and
``python -m prismer_cli.server`` runs it in an app of its own (:func:`main`), so both take the
same options with the same help. Option types and the port range are checked by Typer; every
other check is :func:`prismer_cli.server.options.problem_with` (one line on stderr, exit 2).
The defaults are those of :class:`~prismer_cli.server.options.ServerOptions`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from prismer_cli.server import serve
from prismer_cli.server.options import ServerOptions

EPILOG = "Example: prismer-rt serve --dialect server --token dev-token --fault drop-after=3"
FAULTS_HELP = (
    "Inject a fault (repeatable): no-websocket, refuse=N[:S], rate-limit=N:S, "
    "drop-after=N, half-open-after=N, garbage, upgrade-status=CODE, no-history, "
    "concurrent-handling, foreign-seqs=N, trickle=MS."
)
DEFAULTS = ServerOptions()


def _finite(value: float) -> float:
    """nan and inf are refused: a timer that never fires, or fires at once, is a typo."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def _seconds(flag: str, text: str) -> Any:
    """A duration option: a finite number of seconds."""
    return typer.Option(flag, metavar="SECONDS", callback=_finite, help=text)


def serve_command(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to bind.")
    ] = DEFAULTS.host,
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, metavar="PORT", help="Port (0: any free port)."),
    ] = DEFAULTS.port,
    dialect: Annotated[
        str, typer.Option("--dialect", metavar="docs|server", help="Protocol the server speaks.")
    ] = DEFAULTS.dialect,
    token: Annotated[
        list[str] | None,
        typer.Option(
            "--token",
            metavar="TOKEN[=NAME]",
            help="Accepted token (repeatable); none given: any token is accepted.",
            show_default=False,
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option("--fault", metavar="SPEC", help=FAULTS_HELP, show_default=False),
    ] = None,
    auth_timeout: Annotated[
        float,
        _seconds("--auth-timeout", "Server dialect: close an unauthenticated socket after this."),
    ] = DEFAULTS.auth_timeout,
    ack_timeout: Annotated[
        float,
        _seconds("--ack-timeout", "Server dialect: re-queue an unacknowledged frame after this."),
    ] = DEFAULTS.ack_timeout,
    heartbeat: Annotated[
        float, _seconds("--heartbeat", "Server dialect: SSE heartbeat comment interval.")
    ] = DEFAULTS.heartbeat,
    token_ttl: Annotated[
        float, _seconds("--token-ttl", "Lifetime of the tokens the server issues.")
    ] = DEFAULTS.token_ttl,
    max_message_bytes: Annotated[
        int,
        typer.Option(
            "--max-message-bytes",
            metavar="BYTES",
            help="Largest WebSocket message or REST body accepted (bigger: close 1009 / 413).",
        ),
    ] = DEFAULTS.max_message_bytes,
) -> None:
    """Run a local Prismer-compatible server (for offline use and tests); Ctrl-C stops it."""
    options = ServerOptions(
        host=host,
        port=port,
        dialect=dialect,
        tokens=tuple(token or ()),
        faults=tuple(fault or ()),
        auth_timeout=auth_timeout,
        ack_timeout=ack_timeout,
        heartbeat=heartbeat,
        token_ttl=token_ttl,
        max_message_bytes=max_message_bytes,
    )
    raise typer.Exit(serve(options))


def register(app: typer.Typer, name: str = "serve") -> None:
    """Add the command to a Typer app, with its epilog."""
    app.command(name, epilog=EPILOG)(serve_command)


def main() -> None:
    """``python -m prismer_cli.server``: the same command, alone in an app of its own."""
    app = typer.Typer(
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    register(app)
    app(prog_name="python -m prismer_cli.server")
