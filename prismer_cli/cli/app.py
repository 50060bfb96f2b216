"""The Typer app: the global options, and every command registered in the order --help lists.

This module parses and wires; it opens no socket. Heavy modules (websocket-client, requests,
aiohttp) are imported by the commands that use them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from prismer_cli import __version__
from prismer_cli.cli import config, listen, register, send, whoami
from prismer_cli.cli.options import CONNECTION
from prismer_cli.config import CommandLine
from prismer_cli.server.command import register as register_serve

app = typer.Typer(
    name="prismer-rt",
    help=(
        "A command-line client for the Prismer Cloud real-time API: stream events as NDJSON, "
        "send messages and commands from arguments or stdin.\n\n"
        "Example: prismer-rt listen --count 1 | jq ."
    ),
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prismer-rt {__version__}")
        raise typer.Exit()


@app.callback()
@CONNECTION
def main_callback(
    ctx: typer.Context,
    g: CommandLine,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = g  # connection options before the subcommand: the fallback for its own


config.register(app)
listen.register(app)
send.register(app)
register.register(app)
whoami.register(app)
register_serve(app)  # the stand-in server declares its own options


def main() -> None:
    """Run the app (prismer_cli.cli.main answers --version before importing this module)."""
    app(prog_name="prismer-rt")
