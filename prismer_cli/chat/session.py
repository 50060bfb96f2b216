"""One chat: a connection to one conversation, its events out, typed lines in, confirmed.

The main thread owns the connection (`run`, so that an SSE read can be interrupted at a
deadline as listen's is): it prints the conversation's events, acknowledges them, matches
confirmations, and reconnects (with the listen backoff) when the connection is lost,
subscribing again. An input thread submits lines; each is confirmed as `send` confirms it
(docs/cli.md "Delivery model"):
- server dialect, WebSocket: the server's echo of the message, matched on its idempotency key;
  an error frame carrying its requestId rejects it;
- docs dialect, WebSocket: the pong of a WebSocket ping written after it ("sent");
- over SSE (no socket to write to): a REST post, whose answer carries the message.
A line without a confirmation after `wait` seconds, or when its connection was lost in the
docs dialect (which has no idempotency key, so it is never written twice), is uncertain. In the
server dialect an unconfirmed line is written again, same key, on the next connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from prismer_cli.errors import (
    ConnectError,
    ConnectionLost,
    ExitStatus,
    PrismerError,
)
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.commands import MARK_READ, SEND, Command, new_key
from prismer_cli.protocol.dialects import (
    Dialect,
    answers_us,
    error_message,
    eviction,
    request_id,
)
from prismer_cli.retry import Policy, Retries, retry_after_of, retryable
from prismer_cli.transport import Connect, Connection, Endpoint, Resume

# Which failure decides the exit status: 4 (unconfirmed) over 5 (rejected), as send has it.
_GRAVITY = {ExitStatus.REJECTED: 1, ExitStatus.CONNECTION: 2}
TICK = 0.1  # how often the reader looks for lines past their wait, and for the end
UNCERTAIN = "it may or may not have been delivered"
Report = Callable[[dict[str, Any]], None]


@dataclass
class Line:
    number: int
    command: Command
    request_id: str
    sent_at: float = 0.0
    ping: bytes | None = None  # docs dialect: the ping whose pong confirms it


class ChatSession:
    def __init__(
        self,
        endpoint: Endpoint,
        conversation: str,
        out: Output,
        report: Report,
        log: Log,
        *,
        connect: Connect,
        policy: Policy,
        wait: float = 10.0,
        lifecycle: bool = False,
    ) -> None:
        self.endpoint, self.conversation, self.log = endpoint, conversation, log
        self.out, self._report = out, report  # events, and the results of lines
        self._connect, self._policy, self._wait = connect, policy, wait
        self._lifecycle = lifecycle  # the human view shows connected, disconnected, ...
        self.resume = Resume()
        self.conn: Connection | None = None
        self.connections = 0
        self.me: str | None = None
        self.seen = RecentKeys()
        self._shown_until: str | None = None  # createdAt of the newest message --history showed
        self.status = ExitStatus.OK
        self._lock = threading.RLock()  # state, and every write to the output
        self._waiting: dict[str, Line] = {}  # by request id, in the order written
        self._outbox: list[Line] = []  # lines for the next connection
        self._numbers = 0
        self._stopping = threading.Event()
        self._ending = threading.Event()
        self._end_by = 0.0
        self._rest: Any = None

    # -- connecting ------------------------------------------------------------------------
    def open(self) -> Connection:
        """The first connection (its failures are the command's: exit 3, 4)."""
        conn = self._connect(self.endpoint.cut(), self.resume, self.log)
        self._attach(conn, first=True)
        return conn

    def _attach(self, conn: Connection, *, first: bool = False) -> None:
        dialect = conn.hello.dialect
        self.me = conn.hello.user_id or self.me
        self.connections += 1
        said = {"transport": conn.kind, "dialect": dialect.name, "userId": conn.hello.user_id}
        self._meta("connected", **said, connection=self.connections)
        if conn.kind == "ws":
            conn.send(dialect.subscribe(self.conversation, request_id("sub-1")))
            if not dialect.confirms_sends and hasattr(conn, "on_pong"):
                conn.on_pong = self._on_pong
            if not first:
                again = dialect.reconnect(self.resume.last_event_time)
                if again is not None:
                    conn.send(again)
        with self._lock:
            self.conn = conn
            outbox, self._outbox = self._outbox, []
        for line in outbox:
            self._deliver(line)

    def run(self) -> None:
        """Read in this (the main) thread, reconnecting as the policy allows, until end()
        and the confirmations it waits for, or stop(); raises what ends the chat."""
        retries = Retries(self._policy)
        reason, retry_after = "", None
        while not self._done():
            conn = self.conn
            if conn is None:
                delay = retries.delay(retry_after)
                attempt = retries.count + 1
                self._meta("reconnecting", attempt=attempt, delay=round(delay, 3), reason=reason)
                if self._stopping.wait(delay):
                    return
                try:
                    conn = self._connect(self.endpoint.cut(), self.resume, self.log)
                except PrismerError as exc:
                    if not retryable(exc) or not retries.failed():
                        raise
                    reason, retry_after = str(exc), retry_after_of(exc)
                    continue
                self._attach(conn)
                retries.succeeded()
            try:
                self._pump(conn)
            except ConnectionLost as exc:
                reason = str(exc)
                self._meta("disconnected", reason=reason)
                self._lost(conn)
                if not retries.failed():
                    giving_up = f"giving up after {retries.count - 1} retries: {reason}"
                    raise ConnectError(giving_up) from None

    def end(self) -> None:
        """No more lines: run() returns once they are confirmed (at most `wait` s from now)."""
        self._end_by = time.monotonic() + self._wait
        self._ending.set()
        self.wake()

    def stop(self) -> None:
        """run() returns at once."""
        self._stopping.set()
        self.wake()

    def wake(self) -> None:
        """Interrupt a wait for the server in the main thread (see chat.awake)."""

    def _done(self) -> bool:
        if self._stopping.is_set():
            return True
        if not self._ending.is_set():
            return False
        with self._lock:
            idle = not self._waiting and not self._outbox
        return idle or time.monotonic() >= self._end_by

    # -- receiving (main thread) -----------------------------------------------------------
    def _pump(self, conn: Connection) -> None:
        # An SSE read is interrupted by a signal (as listen's --timeout is), which spoils the
        # stream if it comes often: it ends only at the end (wake), not at every tick.
        tick = TICK if conn.kind == "ws" else 86400.0
        while not self._done():
            for data in conn.messages(time.monotonic() + tick):
                self.handle(conn, data)
                if not conn.pending():
                    self._flush()
                    conn.flush_acks()
            self._flush()
            conn.flush_acks()
            self._expire()

    def handle(self, conn: Connection, data: bytes) -> None:
        """One frame: acknowledged, matched to a line, printed if it is a new event here."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self.log.warning("skipped a frame that is not a JSON object with a type")
            return
        dialect = conn.hello.dialect
        kind, payload = frame["type"], frame.get("payload")
        if kind in dialect.consumed:
            return
        ack_id = frame.get(dialect.ack_field)
        if ack_id is not None:
            conn.ack(ack_id)
        stamp = frame.get(dialect.time_field)
        if stamp is not None:
            self.resume.last_event_time = stamp
        if dialect.is_error(frame) and self._on_error(dialect, frame):
            return
        payload = payload if isinstance(payload, dict) else {}
        echo = dialect.own_echo(frame, self.me)
        if echo is not None:
            self._on_echo(echo[0], echo[1])
        if (
            self.seen.seen(dialect.dedupe_key(kind, payload, frame))
            or not self._ours(kind, payload)
            or self._before_history(kind, payload, frame)
        ):
            return
        with self._lock:
            self.out.line(data if b"\n" not in data else orjson.dumps(frame))

    def _ours(self, kind: str, payload: dict[str, Any]) -> bool:
        if payload.get("conversationId") == self.conversation or kind == "error":
            return True
        return kind.startswith("conversation.") and payload.get("id") == self.conversation

    def _before_history(self, kind: str, payload: dict[str, Any], frame: dict[str, Any]) -> bool:
        """A message the server sends again (`isRetry`: one this user had not acknowledged)
        that is older than the newest one --history showed: it was there when the history was
        read, so it is history (shown already, or older than what was asked for), not a new
        event. One as new as that, or not sent again, is shown: it may be new."""
        until, stamp = self._shown_until, payload.get("createdAt")
        return (
            kind == "message.new"
            and until is not None
            and frame.get("isRetry") is True
            and type(stamp) is str
            and len(stamp) == len(until)  # the same format: compared as text
            and stamp < until
        )

    def show_history(self, messages: list[dict[str, Any]]) -> None:
        """The conversation's last messages, as message.new events; later re-deliveries of
        them, or of older ones, are not printed (`_before_history`)."""
        stamps = [m.get("createdAt") for m in messages]
        if stamps and all(type(stamp) is str for stamp in stamps):
            self._shown_until = max(stamps)  # type: ignore[type-var]
        with self._lock:
            for message in messages:
                if isinstance(message.get("metadata"), str):
                    with contextlib.suppress(orjson.JSONDecodeError):  # kept as it came
                        message["metadata"] = orjson.loads(message["metadata"])
                if isinstance(message.get("id"), str):
                    self.seen.seen(message["id"])
                self.out.record({"type": "message.new", "payload": message})
            self._flush()

    # -- sending (main thread) -------------------------------------------------------------
    def submit(self, text: str) -> None:
        self._numbers += 1
        command = Command(SEND, self.conversation, text, key=new_key(), line=self._numbers)
        line = Line(self._numbers, command, request_id(f"chat-{self._numbers}"))
        with self._lock:
            if self.conn is None:
                self._outbox.append(line)
                return
        self._deliver(line)

    def _deliver(self, line: Line) -> None:
        conn = self.conn
        if conn is None:
            with self._lock:
                self._outbox.append(line)
            return
        if conn.kind != "ws":
            self._over_rest(line)
            return
        dialect = conn.hello.dialect
        frame = dialect.command_frame(line.command, line.request_id)
        assert frame is not None
        with self._lock:
            line.sent_at = time.monotonic()
            self._waiting[line.request_id] = line
            if not dialect.confirms_sends:
                line.ping = f"chat-{line.number}".encode()
        try:
            if line.ping is not None:
                conn.send_many([frame], line.ping)  # type: ignore[call-arg]
            else:
                conn.send(frame)
        except ConnectionLost:
            return  # the reader sees the loss too, and settles or re-sends the line

    def _over_rest(self, line: Line) -> None:
        try:
            answer = self._client().send_message(
                self.conversation, line.command.content or "", "text", {}, line.command.key
            )
        except PrismerError as exc:
            self._settle(line, False, exc.status, error=str(exc))
            return
        from prismer_cli.protocol.endpoints import message_of

        self._settle(line, True, message=message_of(answer) or answer)

    def mark_read(self) -> None:
        """/read: the whole conversation, over REST (both dialects have that endpoint)."""
        self._numbers += 1
        line = Line(self._numbers, Command(MARK_READ, self.conversation), "")
        try:
            self._client().mark_read(self.conversation)
        except PrismerError as exc:
            self._settle(line, False, exc.status, error=str(exc))
            return
        self._settle(line, True)

    def history(self, limit: int) -> list[dict[str, Any]]:
        """The conversation's last `limit` messages, oldest first; PrismerError when the
        server has none to give."""
        timeout = self.endpoint.cut().timeouts.connect
        messages: list[dict[str, Any]] = self._client().history(self.conversation, limit, timeout)
        return messages

    def _client(self) -> Any:
        if self._rest is None:
            from prismer_cli.transport.rest import RestClient

            self._rest = RestClient(self.endpoint, self.log)
        return self._rest

    # -- confirmations ---------------------------------------------------------------------
    def _on_echo(self, key: Any, message: dict[str, Any]) -> None:
        with self._lock:
            line = next((x for x in self._waiting.values() if x.command.key == key), None)
            if line is not None:
                self._settle(line, True, message=message)

    def _on_pong(self, payload: bytes) -> None:
        with self._lock:
            for line in [x for x in self._waiting.values() if x.ping is not None]:
                self._settle(line, True, sent=True)
                if line.ping == payload:
                    break

    def _on_error(self, dialect: Dialect, frame: dict[str, Any]) -> bool:
        """An error frame that refuses a line, or is about the connection: True (no event)."""
        with self._lock:
            line = self._waiting.get(dialect.request_id_of(frame))
            if line is not None:
                self._settle(line, False, ExitStatus.REJECTED, **dialect.error_fields(frame))
                return True
            message = error_message(frame)
            event = isinstance(frame.get("payload"), dict) and not answers_us(frame)
            if event and not eviction(message):
                return False  # an event of its own
            if not self.out.server_error(frame):
                self.log.warning(f"the server reported an error: {message}")
            return True

    def _expire(self) -> None:
        limit = time.monotonic() - self._wait
        with self._lock:
            for line in [x for x in self._waiting.values() if x.sent_at <= limit]:
                error = f"not confirmed by the server within {self._wait:g} s; {UNCERTAIN}"
                self._settle(line, False, ExitStatus.CONNECTION, error=error)

    def _lost(self, conn: Connection) -> None:
        """The connection is gone: the server dialect's lines go again (same key) on the
        next one; the docs dialect's are uncertain."""
        conn.abort()
        with self._lock:
            self.conn = None
            waiting = list(self._waiting.values())
            for line in waiting:
                if conn.hello.dialect.carries_keys:
                    del self._waiting[line.request_id]
                    self._outbox.append(line)
                else:
                    error = f"connection lost before the server confirmed it; {UNCERTAIN}"
                    self._settle(line, False, ExitStatus.CONNECTION, error=error)

    def _settle(
        self, line: Line, ok: bool, status: ExitStatus = ExitStatus.OK, **fields: Any
    ) -> None:
        record: dict[str, Any] = {
            "ok": ok,
            "action": line.command.action,
            "conversationId": self.conversation,
            "line": line.number,
            **fields,
        }
        with self._lock:
            self._waiting.pop(line.request_id, None)
            if _GRAVITY.get(status, 0) > _GRAVITY.get(self.status, 0):
                self.status = status
            self._report(record)

    # -- the end ---------------------------------------------------------------------------
    def finish(self, *, abandon: bool = False) -> None:
        """Close with 1000; what is still unconfirmed is uncertain (the docs dialect's lines
        confirmed by a clean closing handshake, as send has it). `abandon`: interrupted."""
        conn, self.conn = self.conn, None
        if conn is not None:  # close 1000, interrupted too (docs/cli.md "Exit statuses")
            for data in conn.close():
                if not abandon:
                    self.handle(conn, data)
        clean = bool(getattr(conn, "closed_cleanly", False))
        with self._lock:
            for line in [*self._waiting.values(), *self._outbox]:
                if clean and line.ping is not None:
                    self._settle(line, True, sent=True)
                else:
                    why = (
                        "interrupted before the server confirmed it"
                        if abandon
                        else ("not confirmed by the server")
                    )
                    error = f"{why}; {UNCERTAIN}"
                    self._settle(line, False, ExitStatus.CONNECTION, error=error)
            self._outbox = []
            self._flush()
        if self._rest is not None:
            self._rest.close()

    # -- output ----------------------------------------------------------------------------
    def _meta(self, kind: str, **payload: Any) -> None:
        if kind != "connected":
            self.log.info(f"{kind}: {payload}")
        if not self._lifecycle:
            return
        with self._lock:
            self.out.record({"type": "prismer-rt." + kind, "payload": payload})
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            self.out.flush()
