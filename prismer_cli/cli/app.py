"""The Typer app: the global options, and every command, in the order --help lists them.

This module parses and wires; it opens no socket. Heavy modules (websocket-client, requests,
aiohttp) are imported by the commands that use them. A command's own module is imported, and
its click command built, only when something asks for that command (`Commands`): running it,
or a listing (--help, completion, a suggestion for a typo, tools/docgen.py). A one-shot `send`
builds `send` alone, not the seven other commands and their forty options.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, MutableMapping
from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # typer >= 0.28 carries its own copy of click
    from typer._click.core import Command
    from typer._click.exceptions import NoSuchOption
except ImportError:  # pragma: no cover - older typer, on click itself
    from click.core import Command  # type: ignore[assignment]
    from click.exceptions import NoSuchOption  # type: ignore[assignment]

from prismer_cli import __version__, signals
from prismer_cli.cli.options import CONNECTION
from prismer_cli.config import CommandLine

# Every command and the module that registers it, in --help's order (the group comes last).
COMMANDS = (
    "listen",
    "subscribe",
    "send",
    "mark-read",
    "chat",
    "register",
    "whoami",
    "serve",
    "config",
)


def _registrar(name: str) -> Callable[[typer.Typer], None]:
    """The `register(app)` of the module that declares the command `name`."""
    if name in ("listen", "subscribe"):
        from prismer_cli.cli.listen import register
    elif name in ("send", "mark-read"):
        from prismer_cli.cli.send import register
    elif name == "chat":
        from prismer_cli.cli.chat import register
    elif name == "register":
        from prismer_cli.cli.register import register
    elif name == "whoami":
        from prismer_cli.cli.whoami import register
    elif name == "serve":  # the stand-in server declares its own options
        from prismer_cli.server.command import register
    else:
        from prismer_cli.cli.config import register
    return register


class Commands(MutableMapping[str, Command]):
    """The group's commands, each built when first looked up: its module registers it (and
    its neighbours) in an app of its own, as in the main one, and Typer builds them."""

    def __init__(self) -> None:
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built and name in COMMANDS:
            part = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
            _registrar(name)(part)
            for built, command in typer.main.get_group(part).commands.items():
                self._built.setdefault(built, command)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*COMMANDS, *(name for name in self._built if name not in COMMANDS)])

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._built))


def start_collecting() -> None:
    """The program has started: what exists now lives until the end (gc.freeze); collect
    from here on. Only if main() turned the collector off (not in a test's process); see
    prismer_cli/cli/__init__.py."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


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
    """The app's group: its commands built when needed (`Commands`); unknown options suggest
    the nearest real option, or nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        commands = Commands()
        commands.update(self.commands)
        self.commands = commands

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
    start_collecting()  # the command is parsed: the garbage collector is on for its work
    # listen, subscribe and chat keep signals as flags from the program's first moment; every
    # other command gets the usual handlers back (prismer_cli/signals.py)
    signals.settle(ctx.invoked_subcommand in ("listen", "subscribe", "chat"))


def main() -> None:
    """Run the app (prismer_cli.cli.main answers --version before importing this module)."""
    app(prog_name="prismer-rt")
