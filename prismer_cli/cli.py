"""The `prismer-rt` command line: options in, one call into the package, an exit status out.

This module parses and wires; it opens no socket. Connection options are accepted before or
after the subcommand: the callback's values are the fallback for each subcommand's own.
Heavy modules (websocket-client, requests, aiohttp) are imported by the commands that use them.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, NoReturn

import typer

from prismer_cli import __version__
from prismer_cli.errors import Interrupted, PrismerError, UsageError
from prismer_cli.log import Log
from prismer_cli.options import CommandLine
from prismer_cli.status import ExitStatus

if TYPE_CHECKING:
    from prismer_cli.commands import Command
    from prismer_cli.transport import Endpoint

EPILOG_LISTEN = "Example: prismer-rt listen --type message.new | jq -r '.payload.content'"

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
config_app = typer.Typer(
    help="Inspect the configuration.",
    epilog="Example: prismer-rt config show",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

CONNECTION = "Connection options (also accepted before the subcommand)"
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Base URL (http(s):// or ws(s)://); env PRISMER_URL, PRISMER_BASE_URL.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="JWT; env PRISMER_TOKEN, AGENT_TOKEN. Others can see it in ps: prefer --token-file.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
TokenFile = Annotated[
    str | None,
    typer.Option(
        "--token-file",
        metavar="PATH",
        help="Read the token from PATH (mode 0600), or from stdin with '-'.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Transport = Annotated[
    str | None,
    typer.Option(
        "--transport",
        metavar="auto|ws|sse",
        help="auto: WebSocket, else SSE; ws or sse: only that one. [default: auto]",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Dialect = Annotated[
    str | None,
    typer.Option(
        "--dialect",
        metavar="auto|docs|server",
        help="Protocol dialect; auto detects it. [default: auto]",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAME",
        help="Profile of the config file; env PRISMER_PROFILE.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Log the connection lifecycle on stderr.",
        rich_help_panel=CONNECTION,
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=CONNECTION)
]


def _globals(ctx: typer.Context, own: CommandLine) -> CommandLine:
    before = ctx.obj if isinstance(ctx.obj, CommandLine) else CommandLine()
    return before.merged(own)


CONNECTION_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=default)
    for name, option, default in (
        ("url", Url, None),
        ("token", Token, None),
        ("token_file", TokenFile, None),
        ("transport", Transport, None),
        ("dialect", Dialect, None),
        ("profile", Profile, None),
        ("verbose", Verbose, False),
        ("quiet", Quiet, False),
    )
]


def _adding(
    params: list[inspect.Parameter], into: str, gather: Callable[[dict[str, Any], Any], Any]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator that appends `params` to a command's signature (Typer reads the signature)
    and hands the command their values gathered into its parameter `into`."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != into]

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> None:
            values = {p.name: kwargs.pop(p.name) for p in params}
            command(*args, **{into: gather(values, kwargs.get("ctx"))}, **kwargs)

        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*kept, *params]
        )
        return with_options

    return decorate


# Connection options, declared once: accepted before the subcommand (the app's callback has
# them) or after it; a command receives both merged as `g`, its own values first.
connection_options = _adding(
    CONNECTION_OPTIONS, "g", lambda values, ctx: _globals(ctx, CommandLine(**values))
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prismer-rt {__version__}")
        raise typer.Exit()


@app.callback()
@connection_options
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
    ctx.obj = g


# -- running a command ----------------------------------------------------------------------
def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _execute(job: Callable[[Log], ExitStatus], g: CommandLine) -> NoReturn:
    """Run a command; turn every expected failure into a message and an exit status."""
    from prismer_cli.output import OutputClosed, silence_stdout

    log = Log(verbosity=-1 if g.quiet else (1 if g.verbose else 0))
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = job(log)
    except OutputClosed:
        silence_stdout()
        status = ExitStatus.OK
    except Interrupted as exc:
        status = exc.status
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except PrismerError as exc:
        log.error(str(exc))
        status = exc.status
    except Exception as exc:  # the last line of defence: a message, never a traceback
        if os.environ.get("PRISMER_RT_DEBUG"):
            raise
        log.error(f"unexpected {type(exc).__name__}: {exc} (set PRISMER_RT_DEBUG=1 for details)")
        status = ExitStatus.ERROR
    raise typer.Exit(int(status))


def _endpoint(g: CommandLine, log: Log, *, stdin_free: bool) -> tuple[Endpoint, dict[str, float]]:
    """Resolve settings into an Endpoint; warns about a token typed on the command line."""
    from prismer_cli.config import resolve, tuning
    from prismer_cli.dialects import DIALECTS
    from prismer_cli.transport import Endpoint, Timeouts

    settings = resolve(g, os.environ, stdin=sys.stdin.buffer if stdin_free else None)
    log.secret = settings.token.value
    for warning in settings.warnings:
        log.warning(warning)
    if g.token:
        log.warning(
            "a token on the command line is visible to other users (ps); "
            "prefer --token-file or PRISMER_TOKEN"
        )
    if not settings.token.value:
        raise UsageError(
            "no token: give --token-file, set PRISMER_TOKEN, or run `prismer-py register`"
        )
    knobs = tuning(os.environ)
    timeouts = Timeouts(
        connect=knobs["connect"],
        ping_interval=knobs["ping_interval"],
        ping_timeout=knobs["ping_timeout"],
        sse_silence=knobs["sse_silence"],
    )
    assert settings.url.value is not None and settings.transport.value and settings.dialect.value
    return Endpoint(
        url=settings.url.value,
        token=settings.token.value,
        transport=settings.transport.value,
        dialect=DIALECTS.get(settings.dialect.value),
        timeouts=timeouts,
    ), knobs


# -- listen / subscribe ---------------------------------------------------------------------
TypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        "-t",
        metavar="TYPE",
        help="Keep only events of this type (repeatable).",
        show_default=False,
    ),
]
ConvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--conversation",
        "-c",
        metavar="ID",
        help="Keep only events of this conversation (repeatable).",
        show_default=False,
    ),
]
CountOpt = Annotated[
    int | None,
    typer.Option(
        "--count",
        "-n",
        min=1,
        metavar="N",
        help="Exit 0 after N printed events.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.0,
        metavar="SECONDS",
        help="Stop after SECONDS; exit 124 if --count was not reached.",
        show_default=False,
    ),
]
NoReconnectOpt = Annotated[
    bool, typer.Option("--no-reconnect", help="Exit 4 when the connection is lost.")
]
MaxRetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-retries",
        min=0,
        metavar="N",
        help="Give up (exit 4) after N consecutive failed retries; unlimited by default.",
        show_default=False,
    ),
]
MetaOpt = Annotated[
    bool,
    typer.Option(
        "--meta",
        help="Also print lifecycle records (prismer-rt.connected, .reconnecting, .disconnected).",
    ),
]
IgnoreSelfOpt = Annotated[
    bool, typer.Option("--ignore-self", help="Drop events sent by the authenticated user itself.")
]


class ListenFlags(NamedTuple):
    type_: list[str] | None
    conversation: list[str] | None
    stop_after: int | None  # --count (a NamedTuple cannot have a field named count)
    timeout: float | None
    no_reconnect: bool
    max_retries: int | None
    meta: bool
    ignore_self: bool


listen_options = _adding(
    [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=default)
        for name, option, default in (
            ("type_", TypeOpt, None),
            ("conversation", ConvOpt, None),
            ("stop_after", CountOpt, None),
            ("timeout", TimeoutOpt, None),
            ("no_reconnect", NoReconnectOpt, False),
            ("max_retries", MaxRetriesOpt, None),
            ("meta", MetaOpt, False),
            ("ignore_self", IgnoreSelfOpt, False),
        )
    ],
    "flags",
    lambda values, ctx: ListenFlags(**values),
)


def _listen(g: CommandLine, subscribe: tuple[str, ...], flags: ListenFlags) -> NoReturn:
    def job(log: Log) -> ExitStatus:
        from prismer_cli.backoff import Policy
        from prismer_cli.listen import Filters, ListenOptions, listen
        from prismer_cli.output import Output

        endpoint, knobs = _endpoint(g, log, stdin_free=True)
        retries = 0 if flags.no_reconnect else flags.max_retries
        options = ListenOptions(
            filters=Filters(
                frozenset(flags.type_ or ()),
                frozenset(flags.conversation or ()) | frozenset(subscribe),
                flags.ignore_self,
            ),
            subscribe=subscribe,
            count=flags.stop_after,
            timeout=flags.timeout,
            policy=Policy(knobs["backoff_initial"], knobs["backoff_max"], retries),
            meta=flags.meta,
        )
        return listen(endpoint, options, Output(), log)

    _execute(job, g)


@app.command(epilog=EPILOG_LISTEN)
@connection_options
@listen_options
def listen(ctx: typer.Context, g: CommandLine, flags: ListenFlags) -> None:
    """Print every event as one line of JSON (NDJSON) on stdout.

    Reconnects with exponential backoff (1 s doubling to 30 s, with jitter) unless
    --no-reconnect; falls back to Server-Sent Events when no WebSocket can be had.
    """
    _listen(g, (), flags)


@app.command(epilog="Example: prismer-rt subscribe conv_123 --count 5 | jq -r .payload.content")
@connection_options
@listen_options
def subscribe(
    ctx: typer.Context,
    g: CommandLine,
    flags: ListenFlags,
    conversation_ids: Annotated[
        list[str],
        typer.Argument(metavar="CONVERSATION_ID...", help="Conversations to subscribe to."),
    ],
) -> None:
    """Subscribe to conversations (again after every reconnect) and print their events."""
    _listen(g, tuple(conversation_ids), flags)


# -- send / mark-read -----------------------------------------------------------------------
def _read_all_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"stdin is not UTF-8 text: {exc}") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise UsageError("nothing to send: stdin is empty")
    return text


def _run_commands(
    g: CommandLine,
    single: Callable[[], Command] | None,
    *,
    reads_stdin: bool,
    default_action: str,
    message_type: str = "text",
    wait: float = 10.0,
) -> NoReturn:
    """Send one command or the JSON lines of stdin.

    `single` builds the one command; it is called only once the settings are read, since
    `--token-file -` takes its line of stdin first.
    """

    def job(log: Log) -> ExitStatus:
        from prismer_cli import sender
        from prismer_cli.backoff import Policy
        from prismer_cli.commands import parse_batch, read_lines
        from prismer_cli.output import Output

        endpoint, knobs = _endpoint(g, log, stdin_free=not reads_stdin)
        if single is not None:
            batches: Any = [[single()]]
        else:
            batches = (
                parse_batch(batch, default_action, message_type)
                for batch in read_lines(sys.stdin.buffer)
            )
        options = sender.SendOptions(
            wait, Policy(knobs["backoff_initial"], knobs["backoff_max"], 3)
        )
        return sender.run(endpoint, batches, Output(), log, options)

    _execute(job, g)


@app.command(
    epilog=(
        "Examples:\n\n\b\n  prismer-rt send conv_123 'hello'\n"
        "  git log -1 | prismer-rt send conv_123\n"
        "  jq -c '{conversationId: .id, content: .text}' in.json | prismer-rt send"
    )
)
@connection_options
def send(
    ctx: typer.Context,
    g: CommandLine,
    conversation_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[CONVERSATION_ID]",
            help="Conversation to send to; without it, stdin holds JSON lines.",
            show_default=False,
        ),
    ] = None,
    content: Annotated[
        str | None,
        typer.Argument(
            metavar="[CONTENT | -]",
            help="The message; '-' or nothing: all of stdin is one message.",
            show_default=False,
        ),
    ] = None,
    type_: Annotated[
        str, typer.Option("--type", "-t", metavar="MESSAGE_TYPE", help="Message type.")
    ] = "text",
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0.0,
            metavar="SECONDS",
            help="Server dialect: how long to wait for the server to confirm each message.",
        ),
    ] = 10.0,
) -> None:
    """Send a message, all of stdin as one message, or JSON-line commands from stdin.

    Prints one JSON result line per command, with "ok": true|false.
    """
    single = None
    if conversation_id is not None:
        from prismer_cli.commands import SEND, Command

        def single() -> Command:
            text = _read_all_stdin() if content in (None, "-") else content
            if not text:
                raise UsageError("nothing to send: the message is empty")
            return Command(SEND, conversation_id, text, type_)

    _run_commands(
        g,
        single,
        reads_stdin=conversation_id is None or content in (None, "-"),
        default_action="send_message",
        message_type=type_,
        wait=wait,
    )


@app.command(
    "mark-read",
    epilog="Example: prismer-rt mark-read conv_123 msg_456",
)
@connection_options
def mark_read(
    ctx: typer.Context,
    g: CommandLine,
    conversation_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[CONVERSATION_ID]",
            help="Conversation to mark read; without it, stdin holds JSON lines.",
            show_default=False,
        ),
    ] = None,
    message_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[MESSAGE_ID]", help="Mark read up to this message.", show_default=False
        ),
    ] = None,
) -> None:
    """Mark a conversation read, or each {"conversationId", "upToMessageId"} line of stdin."""
    single = None
    if conversation_id is not None:
        from prismer_cli.commands import MARK_READ, Command

        def single() -> Command:
            return Command(MARK_READ, conversation_id, up_to=message_id)

    _run_commands(g, single, reads_stdin=conversation_id is None, default_action="mark_read")


# -- serve ------------------------------------------------------------------------------------
@app.command(
    epilog="Example: prismer-rt serve --dialect server --token dev-token --fault drop-after=3"
)
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
                "drop-after=N, half-open-after=N, garbage, no-history."
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
    token_ttl: Annotated[
        float,
        typer.Option(
            "--token-ttl", metavar="SECONDS", help="Lifetime of the JWTs the server issues."
        ),
    ] = 604800.0,
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
            token_ttl=token_ttl,
        )
        return ExitStatus(run_server(options))

    _execute(job, CommandLine())


# -- config -----------------------------------------------------------------------------------
@config_app.command("show", epilog="Example: PRISMER_PROFILE=staging prismer-rt config show")
@connection_options
def config_show(
    ctx: typer.Context,
    g: CommandLine,
) -> None:
    """Print each setting, where it came from, and the token masked."""

    def job(log: Log) -> ExitStatus:
        from prismer_cli.config import config_path, resolve
        from prismer_cli.redact import mask

        settings = resolve(g, os.environ, stdin=sys.stdin.buffer)
        log.secret = settings.token.value
        for warning in settings.warnings:
            log.warning(warning)
        rows = [
            ("url", settings.url.value, settings.url.source),
            ("token", mask(settings.token.value), settings.token.source),
            ("transport", settings.transport.value, settings.transport.source),
            ("dialect", settings.dialect.value, settings.dialect.source),
            ("profile", settings.profile or "(none)", _profile_source(g)),
            ("config file", str(config_path(os.environ)), ""),
        ]
        for name, value, source in rows:
            typer.echo(f"{name:<12} {value}" + (f"    ({source})" if source else ""))
        return ExitStatus.OK

    _execute(job, g)


def _profile_source(g: CommandLine) -> str:
    if g.profile:
        return "--profile"
    return "env PRISMER_PROFILE" if os.environ.get("PRISMER_PROFILE") else ""


def main() -> None:
    """The console script."""
    app(prog_name="prismer-rt")
