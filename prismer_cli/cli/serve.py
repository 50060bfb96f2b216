"""`serve`: the stand-in server (prismer_cli.server) behind the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log


def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to bind.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, metavar="PORT", help="Port (0: any free port)."),
    ] = 8765,
    dialect: Annotated[
        str, typer.Option("--dialect", metavar="docs|server", help="Protocol the server speaks.")
    ] = "docs",
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
        typer.Option(
            "--fault",
            metavar="SPEC",
            help=(
                "Inject a fault (repeatable): no-websocket, refuse=N[:S], rate-limit=N:S, "
                "drop-after=N, half-open-after=N, garbage."
            ),
            show_default=False,
        ),
    ] = None,
    auth_timeout: Annotated[
        float,
        typer.Option(
            "--auth-timeout",
            metavar="SECONDS",
            help="Server dialect: close an unauthenticated socket after this.",
        ),
    ] = 10.0,
    ack_timeout: Annotated[
        float,
        typer.Option(
            "--ack-timeout",
            metavar="SECONDS",
            help="Server dialect: re-queue an unacknowledged frame after this.",
        ),
    ] = 5.0,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat", metavar="SECONDS", help="Server dialect: SSE heartbeat comment interval."
        ),
    ] = 30.0,
) -> None:
    """Run a local Prismer-compatible server (for offline use and tests); Ctrl-C stops it."""
    if dialect not in ("docs", "server"):
        raise typer.BadParameter("must be docs or server", param_hint="--dialect")

    def job(log: Log) -> ExitStatus:
        from prismer_cli.server import ServerOptions
        from prismer_cli.server import serve as run_server

        options = ServerOptions(
            host=host,
            port=port,
            dialect=dialect,
            tokens=tuple(token or ()),
            faults=tuple(fault or ()),
            auth_timeout=auth_timeout,
            ack_timeout=ack_timeout,
            heartbeat=heartbeat,
        )
        return ExitStatus(run_server(options))

    execute(job, CommandLine())


def register(app: typer.Typer) -> None:
    app.command(
        epilog="Example: prismer-rt serve --dialect server --token dev-token --fault drop-after=3"
    )(serve)
