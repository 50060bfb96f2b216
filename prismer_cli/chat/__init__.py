"""`chat CONVERSATION`: one conversation on one connection, at a terminal or as a pipe.

- session.py: the connection, its events, the lines sent and their confirmations;
- editor.py: the input line at a terminal, with events printed above it;
- this module: the two ways of running it.

At a terminal (stdin and stdout both terminals) it is interactive: the conversation's last
messages (`--history N`, from GET /api/im/messages/{id}?limit=N where the server has it), then
its events in the pretty view, and each line typed is sent; an unconfirmed line is marked.
`/read` marks the conversation read, `/help` lists the commands, `/quit` or Ctrl-D end it
(exit 0), Ctrl-C exits 130. A line that should start with `/` is typed with two.

Otherwise it is a two-way pipe: each line of stdin is a message, events come out as NDJSON
(or as --pretty/--format say), and at the end of stdin it waits for the last confirmations
(at most `wait` seconds): exit 0, or 4 when a line stayed unconfirmed, 5 when one was refused.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from prismer_cli.chat.session import ChatSession
from prismer_cli.errors import ExitStatus, PrismerError
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.retry import Policy
from prismer_cli.transport import Connect, Endpoint

HELP = (
    "/read   mark the conversation read",
    "/help   this list",
    "/quit   end the chat (Ctrl-D too; Ctrl-C interrupts)",
    "//text  send a line that starts with /",
)


@dataclass(frozen=True)
class ChatOptions:
    conversation: str
    history: int = 10
    wait: float = 10.0
    policy: Policy = field(default_factory=Policy)


MakeOutput = Callable[[BinaryIO | None], Output]  # the events' view, written to a stream
Report = Callable[[dict[str, Any]], None]


def at_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _session(
    endpoint: Endpoint,
    options: ChatOptions,
    out: Output,
    report: Report,
    log: Log,
    connect: Connect,
    lifecycle: bool,
) -> ChatSession:
    return ChatSession(
        endpoint,
        options.conversation,
        out,
        report,
        log,
        connect=connect,
        policy=options.policy,
        wait=options.wait,
        lifecycle=lifecycle,
    )


def _begin(session: ChatSession, options: ChatOptions) -> None:
    """Connect and subscribe, then show the history."""
    session.open()
    if options.history > 0:
        try:
            messages = session.history(options.history)
        except PrismerError as exc:
            session.log.info(f"no history shown: {exc}")
        else:
            session.show_history(messages)


def _converse(session: ChatSession, feed: Callable[[], None]) -> None:
    """Read the connection in this thread while `feed` reads the input in another; the
    input thread ends the session (end() or stop()) when the input does, and wakes this
    thread: an SSE read ends as at its deadline (SSEConnection.wake), a WebSocket's wait
    ends at its next tick anyway."""
    failed: list[BaseException] = []

    def wake() -> None:
        conn = session.conn
        if conn is not None and hasattr(conn, "wake"):
            conn.wake()

    session.wake = wake  # type: ignore[method-assign]

    def reading() -> None:
        try:
            feed()
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failed.append(exc)
            session.stop()
        else:
            session.end()

    threading.Thread(target=reading, name="prismer-rt-input", daemon=True).start()
    abandon = True
    try:
        session.run()
        abandon = bool(failed)
    finally:
        session.stop()
        session.finish(abandon=abandon)
    if failed:
        raise failed[0]


# -- the pipe ------------------------------------------------------------------------------
def pipe(
    endpoint: Endpoint,
    options: ChatOptions,
    out: Output,
    log: Log,
    *,
    connect: Connect,
    lifecycle: bool = False,
) -> ExitStatus:
    def report(record: dict[str, Any]) -> None:
        if not record.get("ok"):
            log.error(f"stdin line {record.get('line')}: {record.get('error')}")

    session = _session(endpoint, options, out, report, log, connect, lifecycle)
    _begin(session, options)

    def feed() -> None:
        for text in _stdin_lines(log):
            session.submit(text)

    _converse(session, feed)
    return session.status


def _stdin_lines(log: Log) -> Any:
    """Each non-blank line of stdin as text, as soon as it is complete."""
    fd = sys.stdin.fileno()
    pending = b""
    number = 0
    while True:
        data = os.read(fd, 65536)
        if data:
            *lines, pending = (pending + data).split(b"\n")
        else:  # the end of stdin: its last line, even without a newline
            lines, pending = [pending], b""
        for raw in lines:
            number += 1
            try:
                text = raw.rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                log.error(f"stdin line {number} is not UTF-8 text; skipped")
                continue
            if text.strip():
                yield text
        if not data:
            return


# -- the terminal --------------------------------------------------------------------------
class _Screen:
    """A stream whose writes go above the input line (bytes for Output, text for the log)."""

    def __init__(self, editor: Any) -> None:
        self._editor = editor
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def write(self, data: bytes | str) -> int:
        with self._lock:
            self._parts.append(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
        return len(data)

    def flush(self) -> None:
        with self._lock:
            text, self._parts = "".join(self._parts), []
        self._editor.above(text)

    def isatty(self) -> bool:
        return True


def terminal(
    endpoint: Endpoint,
    options: ChatOptions,
    make_output: MakeOutput,
    results: MakeOutput,
    log: Log,
    *,
    connect: Connect,
) -> ExitStatus:
    from prismer_cli.chat.editor import END, LineEditor
    from prismer_cli.view.results import outcome

    editor = LineEditor(sys.stdin.fileno(), sys.stdout.fileno())
    screen = _Screen(editor)
    out, shown = make_output(screen), results(screen)  # type: ignore[arg-type]

    def report(record: dict[str, Any]) -> None:
        if outcome(record) != "confirmed" or record.get("action") != "send_message":
            shown.record(record)  # a confirmed message shows as its own event
            shown.flush()

    session = _session(endpoint, options, out, report, log, connect, True)

    def feed() -> None:
        fd = sys.stdin.fileno()
        while True:
            data = os.read(fd, 4096)
            items = editor.feed(data) if data else [END]
            if END in items or not _typed(session, screen, items):
                return

    log.redirect(screen)  # type: ignore[arg-type]
    if log.trace is not None:
        log.trace.redirect(screen)  # type: ignore[arg-type]
    try:
        with editor:
            _begin(session, options)
            _converse(session, feed)
    finally:
        log.redirect(None)
        if log.trace is not None:
            log.trace.redirect(None)
    return ExitStatus.OK


def _typed(session: ChatSession, screen: _Screen, lines: list[Any]) -> bool:
    """Send the lines typed, or do their commands; False after /quit."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.startswith("//"):
            session.submit(text[1:])
        elif text == "/quit":
            return False
        elif text == "/read":
            session.mark_read()
        elif text == "/help":
            screen.write("\n".join(HELP) + "\n")
            screen.flush()
        elif text.startswith("/"):
            screen.write(f"unknown command {text.split()[0]}; /help lists them\n")
            screen.flush()
        else:
            session.submit(line)
    return True
