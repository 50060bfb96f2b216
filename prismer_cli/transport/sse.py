"""SSE transport: requests opens the stream, sseparse parses it (read-only: commands use REST).

The docs dialect's named events (`event: message.new` + `data: <payload>`) become envelopes
`{"type": <event>, "payload": <data>}`; the server dialect's unnamed `data:` lines already are
envelopes. Over the docs path, the last `id:` is sent back as `Last-Event-ID` on reconnect and
`retry:` sets the next reconnection delay, as a browser's EventSource does.

The stream is read with urllib3's read1(), which returns whatever has arrived, and parsed by
sseparse.py rather than sseclient-py, whose per-event cost caps it below 70k events/s
(README "Design notes"). A silent stream trips the read timeout (Timeouts.sse_silence); the
caller's --timeout deadline, and the attempt's bound while the stream is opened, interrupt a
blocking read with SIGALRM.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import urllib3

from prismer_cli.errors import AuthError, ConnectError, ConnectionLost
from prismer_cli.protocol.dialects import SSE_PROBE_ORDER, Dialect, Hello, error_message
from prismer_cli.redact import redact
from prismer_cli.transport.base import Endpoint, Resume, retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.sseparse import SSEEvent, SSEParser
from prismer_cli.transport.trace import Tracer
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.urls import endpoint as endpoint_url

CHUNK = 65536


class _DeadlineReached(Exception):
    pass


class _Alarm:
    """Interrupt a blocking read at a deadline, and only a blocking read (never a write)."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.blocking = False
        self.fired = False
        self._armed = deadline is not None and threading.current_thread() is threading.main_thread()
        self._previous: Any = None

    def __enter__(self) -> _Alarm:
        if self._armed and self.deadline is not None:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, max(0.001, self.deadline - time.monotonic()))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        if self.blocking:
            raise _DeadlineReached


class _Envelopes:
    """Named SSE events as envelopes; the `{"type":<name>,"payload":` prefix is built once."""

    def __init__(self) -> None:
        self._prefixes: dict[str, bytes] = {}

    def __call__(self, event: SSEEvent) -> bytes:
        prefix = self._prefixes.get(event.event)
        if prefix is None:
            prefix = b'{"type":' + orjson.dumps(event.event) + b',"payload":'
            self._prefixes[event.event] = prefix
        return prefix + event.data + b"}"


class SSEConnection:
    kind = "sse"

    def __init__(
        self,
        response: requests.Response,
        dialect: Dialect,
        resume: Resume,
        token: str,
        trace: Tracer | None = None,
    ) -> None:
        self._response = response
        self._read = response.raw.read1
        self._parser = SSEParser()
        self._queue: list[SSEEvent] = []
        self._index = 0
        self._resume = resume
        self._token = token
        self._trace = trace
        self.dialect = dialect
        self.hello = Hello(dialect)

    @classmethod
    def open(cls, endpoint: Endpoint, resume: Resume) -> SSEConnection:
        forced = endpoint.dialect or resume.dialect
        probes = (forced,) if forced else SSE_PROBE_ORDER
        for dialect in probes:
            with _Alarm(endpoint.deadline.at) as alarm:
                alarm.blocking = True
                try:
                    response = _get(endpoint, dialect, resume)
                except _DeadlineReached:
                    raise ConnectError(
                        f"no answer from the server within {endpoint.timeouts.connect:.1f} s"
                        " (event stream)"
                    ) from None
            if response.status_code == 404 and dialect is not probes[-1]:
                response.close()
                continue
            _check_status(response)
            conn = cls(response, dialect, resume, endpoint.token, endpoint.trace)
            if dialect.sse_authenticates:
                conn._authenticate(endpoint.deadline.at)
            return conn
        raise ConnectError("no SSE endpoint on this server (HTTP 404 on both paths)")

    def _authenticate(self, deadline: float | None) -> None:
        """A stream that starts with an authentication envelope (the server dialect's)."""
        try:
            self._first_envelope(deadline)
        except ConnectionLost as exc:
            raise ConnectError(str(exc)) from None

    def _first_envelope(self, deadline: float | None) -> None:
        for data in self.messages(deadline):
            try:
                frame = orjson.loads(data)
            except orjson.JSONDecodeError:
                break
            if not isinstance(frame, dict):
                break
            if self.dialect.is_auth_failure(frame):
                raise AuthError(f"the server rejected the token: {error_message(frame)}")
            if frame.get("type") == self.dialect.auth_ok:
                self.hello = self.dialect.hello(frame)
                return
            break
        raise ConnectError("the SSE stream did not start with an authentication event")

    def messages(self, deadline: float | None = None) -> Iterator[bytes]:
        resume = self._resume
        named = self.dialect.sse_named_events
        envelope = _Envelopes()
        with _Alarm(deadline) as alarm:
            while True:
                queue, index = self._queue, self._index
                while index < len(queue):
                    event = queue[index]
                    index += 1
                    self._index = index
                    if event.id is not None:
                        resume.last_event_id = event.id
                    yield envelope(event) if named else event.data
                if alarm.fired:
                    return
                self._fill(alarm)
                if alarm.fired:
                    return

    def _fill(self, alarm: _Alarm) -> None:
        alarm.blocking = True
        try:
            chunk = self._read(CHUNK)
        except _DeadlineReached:
            return
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise ConnectionLost("the event stream went silent") from None
            raise ConnectionLost(
                f"the event stream broke: {redact(reason(exc), self._token)}"
            ) from None
        finally:
            alarm.blocking = False
        if not chunk:
            raise ConnectionLost("the server ended the event stream")
        self._queue = self._parser.feed(chunk)
        self._index = 0
        if self._trace is not None:  # --trace: each event with its id (per chunk, not event)
            for event in self._queue:
                self._trace.sse(event.event, event.id, event.data)
        if self._parser.retry is not None:
            self._resume.retry_ms = self._parser.retry

    def pending(self) -> bool:
        return self._index < len(self._queue)

    def send(self, frame: dict[str, Any]) -> None:
        raise ConnectError("an SSE stream cannot carry commands")

    def send_many(self, frames: list[dict[str, Any]]) -> None:
        raise ConnectError("an SSE stream cannot carry commands")

    def ack(self, ack_id: str) -> None:
        return  # the SSE stream has no way to acknowledge

    def flush_acks(self) -> None:
        return

    def close(self) -> list[bytes]:
        self.abort()  # a read-only stream has no closing handshake
        return []

    def abort(self) -> None:
        self._response.close()


def _get(endpoint: Endpoint, dialect: Dialect, resume: Resume) -> requests.Response:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if resume.last_event_id is not None:
        headers["Last-Event-ID"] = resume.last_event_id
    timeouts = endpoint.timeouts
    session = traced(requests.Session(), endpoint.trace)  # as requests.get, traced or not
    try:
        return session.get(
            endpoint_url(endpoint.url, dialect.sse_path),
            params={"token": endpoint.token},
            headers=headers,
            stream=True,
            timeout=(timeouts.connect, timeouts.sse_silence),
        )
    except requests.RequestException as exc:
        raise ConnectError(
            redact(reason(exc, urlsplit(endpoint.url).hostname), endpoint.token)
        ) from None
    finally:
        session.close()  # the response keeps its connection


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    response.close()
    if status in (401, 403):
        raise AuthError(f"the server rejected the token (HTTP {status})")
    raise ConnectError(
        f"the event stream answered HTTP {status}", retry_after=retry_after(response.headers)
    )
