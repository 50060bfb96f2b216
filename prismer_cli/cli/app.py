"""The Typer app: the global options, and every command registered in the order --help lists.

This module parses and wires; it opens no socket. Heavy modules (websocket-client, requests,
aiohttp) are imported by the commands that use them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # typer >= 0.28 carries its own copy of click
    from typer._click.exceptions import NoSuchOption
except ImportError:  # pragma: no cover - older typer, on click itself
    from click.exceptions import NoSuchOption  # type: ignore[assignment]

from prismer_cli import __version__, signals
from prismer_cli.cli import chat, config, listen, register, send, whoami
from prismer_cli.cli.options import CONNECTION
from prismer_cli.config import CommandLine
from prismer_cli.server.command import register as register_serve


def _nearest_option(exc: NoSuchOption) -> None:
    """Replace the framework's suggestions (difflib over names with their dashes, so that
    `--bogus` looked like `--verbose`) by the one nearest option of the command, or none."""
    import difflib

    if exc.ctx is None:
        return
    names = [
        name
        for param in exc.ctx.command.get_params(exc.ctx)
        for name in (*param.opts, *param.secondary_opts)
        if name.startswith("--")
    ]
    bare = {name[2:]: name for name in names}
    close = difflib.get_close_matches(exc.option_name.lstrip("-"), list(bare), n=1, cutoff=0.6)
    exc.possibilities = [bare[close[0]]] if close else []


class _Group(TyperGroup):
    """The app's group: unknown options suggest the nearest real option, or nothing."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as exc:
            _nearest_option(exc)
            raise

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except NoSuchOption as exc:  # a subcommand's option
            _nearest_option(exc)
            raise


app = typer.Typer(
    name="prismer-rt",
    cls=_Group,
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
    # listen and subscribe keep signals as flags from the program's first moment; every other
    # command gets the usual handlers back (prismer_cli/signals.py)
    signals.settle(ctx.invoked_subcommand in ("listen", "subscribe"))


config.register(app)
listen.register(app)
send.register(app)
chat.register(app)
register.register(app)
whoami.register(app)
register_serve(app)  # the stand-in server declares its own options


def main() -> None:
    """Run the app (prismer_cli.cli.main answers --version before importing this module)."""
    app(prog_name="prismer-rt")
