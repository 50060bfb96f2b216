"""Option groups: options that several commands share, each declared once.

Typer reads a command's options from its signature. An OptionGroup, used as a decorator,
appends its options to the signature and hands the command their values as one instance of its
dataclass, in the parameter annotated with that class.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from prismer_cli.config import CommandLine

CommandFunction = Callable[..., None]
KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


class OptionGroup:
    def __init__(
        self,
        cls: type[Any],
        complete: Callable[[Any, Any], Any] = lambda value, ctx: value,
        **options: Any,
    ) -> None:
        """`options`: an Annotated type with its typer.Option for each field of the dataclass
        `cls` (whose defaults are the options' defaults); `complete(instance, ctx)` finishes
        the instance."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        self.cls = cls
        self.complete = complete
        self.parameters = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=defaults[name]
            )
            for name, a in options.items()
        ]

    def __call__(self, command: CommandFunction) -> CommandFunction:
        signature = inspect.signature(command, eval_str=True)
        (into,) = [p.name for p in signature.parameters.values() if p.annotation is self.cls]
        kept = [p for p in signature.parameters.values() if p.name != into]

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> None:
            values = self.cls(**{p.name: kwargs.pop(p.name) for p in self.parameters})
            command(*args, **{into: self.complete(values, kwargs.get("ctx"))}, **kwargs)

        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*kept, *self.parameters]
        )
        return with_options


def finite(value: float | None) -> float | None:
    """The callback of every float option: nan and inf are refused (exit 2), never a
    deadline that cannot pass."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def _after_the_subcommand(own: CommandLine, ctx: typer.Context) -> CommandLine:
    """A command's own connection options over those given before the subcommand."""
    before = ctx.obj if isinstance(ctx.obj, CommandLine) else CommandLine()
    return before.merged(own)


PANEL = "Connection options (also accepted before the subcommand)"

# Connection options: accepted before the subcommand (the app's callback has them) or after it.
CONNECTION = OptionGroup(
    CommandLine,
    _after_the_subcommand,
    url=Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Base URL (http(s):// or ws(s)://); env PRISMER_URL, PRISMER_BASE_URL.",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    token=Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help=(
                "JWT; env PRISMER_TOKEN, AGENT_TOKEN. Others can see it in ps: prefer --token-file."
            ),
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    token_file=Annotated[
        str | None,
        typer.Option(
            "--token-file",
            metavar="PATH",
            help="Read the token from PATH (mode 0600), or from stdin with '-'.",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    transport=Annotated[
        str | None,
        typer.Option(
            "--transport",
            metavar="auto|ws|sse",
            help="auto: WebSocket, else SSE; ws or sse: only that one. [default: auto]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    dialect=Annotated[
        str | None,
        typer.Option(
            "--dialect",
            metavar="auto|docs|server",
            help="Protocol dialect; auto detects it. [default: auto]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    profile=Annotated[
        str | None,
        typer.Option(
            "--profile",
            metavar="NAME",
            help="Profile of the config file; env PRISMER_PROFILE.",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    no_refresh=Annotated[
        bool,
        typer.Option(
            "--no-refresh",
            help="Never refresh the token, even when it is about to expire.",
            rich_help_panel=PANEL,
        ),
    ],
    verbose=Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log the connection lifecycle on stderr.", rich_help_panel=PANEL
        ),
    ],
    quiet=Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=PANEL)
    ],
)


@dataclass(frozen=True)
class ListenFlags:
    type_: list[str] | None = None
    conversation: list[str] | None = None
    match: list[str] | None = None
    stop_after: int | None = None  # --count
    timeout: float | None = None
    no_reconnect: bool = False
    max_retries: int | None = None
    meta: bool = False
    ignore_self: bool = False
    since: str = "now"
    cursor_file: str | None = None
    no_follow: bool = False


# The options of listen and subscribe.
LISTEN = OptionGroup(
    ListenFlags,
    type_=Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            metavar="TYPE",
            help="Keep only events of this type (repeatable).",
            show_default=False,
        ),
    ],
    conversation=Annotated[
        list[str] | None,
        typer.Option(
            "--conversation",
            "-c",
            metavar="ID",
            help="Keep only events of this conversation (repeatable).",
            show_default=False,
        ),
    ],
    match=Annotated[
        list[str] | None,
        typer.Option(
            "--match",
            "-m",
            metavar="PATH=VALUE",
            help=(
                "Keep only events whose field PATH (dotted into the envelope, e.g. "
                "payload.taskId) equals VALUE, as JSON when it parses, else as a string "
                "(repeatable: all must hold)."
            ),
            show_default=False,
        ),
    ],
    stop_after=Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            metavar="N",
            help="Exit 0 after N printed events.",
            show_default=False,
        ),
    ],
    timeout=Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.0,
            callback=finite,
            metavar="SECONDS",
            help="Stop after SECONDS; exit 124 if --count was not reached.",
            show_default=False,
        ),
    ],
    no_reconnect=Annotated[
        bool, typer.Option("--no-reconnect", help="Exit 4 when the connection is lost.")
    ],
    max_retries=Annotated[
        int | None,
        typer.Option(
            "--max-retries",
            min=0,
            metavar="N",
            help="Give up (exit 4) after N consecutive failed retries; unlimited by default.",
            show_default=False,
        ),
    ],
    meta=Annotated[
        bool,
        typer.Option(
            "--meta",
            help=(
                "Also print lifecycle records (prismer-rt.connected, .reconnecting, .disconnected)."
            ),
        ),
    ],
    ignore_self=Annotated[
        bool,
        typer.Option("--ignore-self", help="Drop events sent by the authenticated user itself."),
    ],
    since=Annotated[
        str,
        typer.Option(
            "--since",
            metavar="SEQ|all|now",
            help="First print the stored events after SEQ (all: from the start) from the "
            "server's event log, then the live ones.",
        ),
    ],
    cursor_file=Annotated[
        str | None,
        typer.Option(
            "--cursor-file",
            metavar="FILE",
            help="Start after the cursor saved in FILE (else as --since says); save the cursor "
            "of each event written there. One listen per FILE at a time.",
            show_default=False,
        ),
    ],
    no_follow=Annotated[
        bool,
        typer.Option(
            "--no-follow",
            help="Print the stored events and exit 0 without going live (the cron mode).",
        ),
    ],
)
