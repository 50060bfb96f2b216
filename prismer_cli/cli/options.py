"""Option groups: options that several commands share, each declared once (listen's own, which
no other command loads, are in listenoptions.py).

Typer reads a command's options from its signature. An OptionGroup, used as a decorator,
appends its options to the signature and hands the command their values as one instance of its
record (or dataclass), in the parameter annotated with that class.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Annotated, Any

import typer

from prismer_cli.config import CommandLine
from prismer_cli.view import ViewFlags

CommandFunction = Callable[..., None]
KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


class OptionGroup:
    def __init__(
        self,
        cls: type[Any],
        complete: Callable[[Any, Any], Any] = lambda value, ctx: value,
        **options: Any,
    ) -> None:
        """`options`: an Annotated type with its typer.Option for each parameter of the record
        or dataclass `cls` (whose defaults are the options' defaults); `complete(instance,
        ctx)` finishes the instance."""
        defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
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


def _value(*names: str, metavar: str, text: str, kind: Any = str | None, **more: Any) -> Any:
    """An option that takes a value and shows no default (its default is None: not given)."""
    option = typer.Option(*names, metavar=metavar, help=text, show_default=False, **more)
    return Annotated[kind, option]


def _switch(*names: str, text: str, **more: Any) -> Any:
    """An on/off flag, off by default."""
    return Annotated[bool, typer.Option(*names, help=text, **more)]


def _repeatable(*names: str, metavar: str, text: str) -> Any:
    """An option that may be given several times (none by default)."""
    return _value(*names, metavar=metavar, text=text, kind=list[str] | None)


def _number(*names: str, metavar: str, text: str, at_least: float) -> Any:
    """A number option (none by default) of the bound's type, int or float; a float one
    refuses nan and inf (:func:`finite`)."""
    kind = type(at_least)
    more = {"callback": finite} if kind is float else {}
    return _value(*names, metavar=metavar, text=text, kind=kind | None, min=at_least, **more)


_connection_value = functools.partial(_value, rich_help_panel=PANEL)
_connection_switch = functools.partial(_switch, rich_help_panel=PANEL)

# Connection options: accepted before the subcommand (the app's callback has them) or after it.
CONNECTION = OptionGroup(
    CommandLine,
    _after_the_subcommand,
    url=_connection_value(
        "--url",
        metavar="URL",
        text="Base URL (http(s):// or ws(s)://); env PRISMER_URL, PRISMER_BASE_URL.",
    ),
    token=_connection_value(
        "--token",
        metavar="TOKEN",
        text="JWT; env PRISMER_TOKEN, AGENT_TOKEN. Others can see it in ps: prefer --token-file.",
    ),
    token_file=_connection_value(
        "--token-file",
        metavar="PATH",
        text="Read the token from PATH (mode 0600), or from stdin with '-'.",
    ),
    transport=_connection_value(
        "--transport",
        metavar="auto|ws|sse",
        text="auto: WebSocket, else SSE; ws or sse: only that one. [default: auto]",
    ),
    dialect=_connection_value(
        "--dialect",
        metavar="auto|docs|server",
        text="Protocol dialect; auto detects it. [default: auto]",
    ),
    profile=_connection_value(
        "--profile", metavar="NAME", text="Profile of the config file; env PRISMER_PROFILE."
    ),
    no_refresh=_connection_switch(
        "--no-refresh", text="Never refresh the token, even when it is about to expire."
    ),
    verbose=_connection_switch("--verbose", "-v", text="Log the connection lifecycle on stderr."),
    quiet=_connection_switch("--quiet", "-q", text="Only errors on stderr."),
    trace=_connection_switch(
        "--trace",
        text="Show the wire on stderr: the upgrade, every frame in (<) and out (>), every SSE "
        "event, every HTTP request; the token as ***.",
    ),
)


OUTPUT_PANEL = "Output options"
_PRETTY = _switch(
    "--pretty",
    text="One human line per event or result: local time, type, conversation, sender, "
    'content (config: output = "pretty"; env PRISMER_RT_OUTPUT).',
    rich_help_panel=OUTPUT_PANEL,
)
_JSON = _switch(
    "--json",
    text="NDJSON (the default), whatever the config file or PRISMER_RT_OUTPUT say.",
    rich_help_panel=OUTPUT_PANEL,
)
_COLOR = _value(
    "--color",
    metavar="auto|always|never",
    text="Colour the human view by type family; auto: only on a terminal, without NO_COLOR, "
    "TERM not dumb. [default: auto]",
    kind=str,
    rich_help_panel=OUTPUT_PANEL,
)
_FORMAT = _value(
    "--format",
    metavar="TEMPLATE",
    text="One line per event: {PATH} is the field at PATH, dotted as for --match ({type}, "
    "{payload.content}, {seq}); {received}: the local receive time; {{ and }}: braces.",
    rich_help_panel=OUTPUT_PANEL,
)


def _check_color(flags: ViewFlags, ctx: typer.Context) -> ViewFlags:
    if flags.color not in ("auto", "always", "never"):
        raise typer.BadParameter(
            f"takes auto, always or never, not {flags.color!r}", param_hint="--color"
        )
    return flags


# The output options of listen, subscribe and chat ...
EVENT_OUTPUT = OptionGroup(
    ViewFlags, _check_color, pretty=_PRETTY, format=_FORMAT, json=_JSON, color=_COLOR
)
# ... and of send and mark-read, whose results have no template.
RESULT_OUTPUT = OptionGroup(ViewFlags, _check_color, pretty=_PRETTY, json=_JSON, color=_COLOR)
