"""`send` and `mark-read`: one command from the arguments, or one per JSON line of stdin."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from prismer_cli.cli.options import CONNECTION, RESULT_OUTPUT, finite
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus, UsageError
from prismer_cli.log import Log
from prismer_cli.view import ViewFlags

if TYPE_CHECKING:
    from prismer_cli.protocol.commands import Command


def _at_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


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
    output: ViewFlags,
    single: Callable[[], Command] | None,
    *,
    reads_stdin: bool,
    default_action: str,
    message_type: str = "text",
    wait: float = 10.0,
    retry_file: str | None = None,
) -> None:
    """Send one command or the JSON lines of stdin.

    `single` builds the one command; it is called only once the settings are read, since
    `--token-file -` takes its line of stdin first.
    """

    def job(log: Log) -> ExitStatus:
        from prismer_cli import send
        from prismer_cli.cli.endpoint import endpoint_for
        from prismer_cli.protocol.commands import LINE_SLACK, parse_batch, read_lines
        from prismer_cli.retry import Policy
        from prismer_cli.tuning import SEND_RETRIES
        from prismer_cli.view.choice import choose_for, result_output

        view = choose_for(output, g)
        endpoint, tuning = endpoint_for(g, log, stdin_free=not reads_stdin)
        if reads_stdin and _at_terminal() and log.verbosity >= 0:  # not silently (docs/cli.md)
            what = "the message" if single is not None else "JSON lines, one command each,"
            log.plain(f"reading {what} from stdin until Ctrl-D")
        if single is not None:
            batches: Any = [[single()]]
        else:
            batches = (
                parse_batch(batch, default_action, message_type, tuning.max_message_bytes)
                for batch in read_lines(
                    sys.stdin.buffer, idle=0.1, limit=tuning.max_message_bytes + LINE_SLACK
                )
            )
        policy = Policy(tuning.backoff, SEND_RETRIES, tuning.timeouts.send)
        options = send.SendOptions(wait, policy, tuning.max_message_bytes, retry_file)
        return send.run(endpoint, batches, result_output(view), log, options)

    execute(job, g)


def check_id(value: str | None, hint: str) -> None:
    """An id from the command line that cannot be one ('', '.', '..', a '/'): exit 2 before
    anything connects (docs/cli.md "Hygiene")."""
    from prismer_cli.protocol.commands import id_problem

    problem = None if value is None else id_problem(value)
    if problem:
        raise typer.BadParameter(problem, param_hint=hint)


def _optional_argument(metavar: str, text: str) -> Any:
    return typer.Argument(metavar=metavar, help=text, show_default=False)


def _conversation_argument(purpose: str) -> Any:
    """CONVERSATION_ID, the argument whose absence means JSON lines on stdin."""
    return _optional_argument(
        "[CONVERSATION_ID]", f"Conversation {purpose}; without it, stdin holds JSON lines."
    )


def _one_command(
    conversation_id: str | None, build: Callable[[str], Command]
) -> Callable[[], Command] | None:
    """The one command of the arguments, built when called; None when stdin holds the lines."""
    if conversation_id is None:
        return None
    return functools.partial(build, conversation_id)


@CONNECTION
@RESULT_OUTPUT
def send(
    ctx: typer.Context,
    g: CommandLine,
    output: ViewFlags,
    conversation_id: Annotated[str | None, _conversation_argument("to send to")] = None,
    content: Annotated[
        str | None,
        _optional_argument(
            "[CONTENT | -]", "The message; '-' or nothing: all of stdin is one message."
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
            callback=finite,
            metavar="SECONDS",
            help="How long the server may take to confirm each message once written, and to "
            "answer the closing handshake.",
        ),
    ] = 10.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="The one message's idempotency key: a re-run with the same KEY posts nothing "
            'new (JSON lines give their own "idempotencyKey").',
            show_default=False,
        ),
    ] = None,
    retry_file: Annotated[
        str | None,
        typer.Option(
            "--retry-file",
            metavar="FILE",
            help="Write each command not done (uncertain, not sent, interrupted) to FILE as a "
            "JSON line with its idempotency key; `send < FILE` finishes the job.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send a message, all of stdin as one message, or JSON-line commands from stdin.

    Prints one JSON result line per command, with "ok": true|false, and a message's
    "idempotencyKey". The messages of one conversation arrive in input order (server dialect:
    a conversation's next line is written once the previous one is confirmed; other
    conversations pipeline); nothing is promised across conversations. A command whose
    connection attempts and retries have not succeeded after
    30 s is given up (exit 4; PRISMER_RT_SEND_TIMEOUT changes the bound), then at most --wait
    more for its confirmation. The docs dialect's WebSocket carries no key: a message re-sent
    after an uncertain result there may post twice; --transport sse sends over REST, with keys.
    """
    from prismer_cli.protocol.commands import SEND, Command, new_key

    if idempotency_key is not None and (conversation_id is None or not idempotency_key):
        raise typer.BadParameter(
            'a non-empty key, for one message (JSON lines give their own "idempotencyKey")',
            param_hint="--idempotency-key",
        )
    check_id(conversation_id, "CONVERSATION_ID")

    def message(conversation: str) -> Command:
        text = _read_all_stdin() if content in (None, "-") else content
        if not text:
            raise UsageError("nothing to send: the message is empty")
        key, given = (idempotency_key, True) if idempotency_key else (new_key(), False)
        return Command(SEND, conversation, text, type_, key=key, key_given=given)

    _run_commands(
        g,
        output,
        _one_command(conversation_id, message),
        reads_stdin=conversation_id is None or content in (None, "-"),
        default_action=SEND,
        message_type=type_,
        wait=wait,
        retry_file=retry_file,
    )


@CONNECTION
@RESULT_OUTPUT
def mark_read(
    ctx: typer.Context,
    g: CommandLine,
    output: ViewFlags,
    conversation_id: Annotated[str | None, _conversation_argument("to mark read")] = None,
    message_id: Annotated[
        str | None, _optional_argument("[MESSAGE_ID]", "Mark read up to this message.")
    ] = None,
) -> None:
    """Mark a conversation read, or each {"conversationId", "upToMessageId"} line of stdin."""
    from prismer_cli.protocol.commands import MARK_READ, Command

    check_id(conversation_id, "CONVERSATION_ID")
    check_id(message_id, "MESSAGE_ID")
    single = _one_command(conversation_id, lambda c: Command(MARK_READ, c, up_to=message_id))
    _run_commands(g, output, single, reads_stdin=conversation_id is None, default_action=MARK_READ)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=(
            "Examples:\n\n\b\n  prismer-rt send conv_123 'hello'\n"
            "  git log -1 | prismer-rt send conv_123\n"
            "  jq -c '{conversationId: .id, content: .text}' in.json | prismer-rt send"
        )
    )(send)
    app.command("mark-read", epilog="Example: prismer-rt mark-read conv_123 msg_456")(mark_read)
