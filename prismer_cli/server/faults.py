"""Faults a user or a test can inject, to see how a client copes.

Given with ``--fault SPEC`` (repeatable) or replaced at run time by ``POST /_control/faults``
``{"faults": [SPEC, ...]}``:

``no-websocket``
    Every WebSocket upgrade gets HTTP 400 with an HTML body, as from a proxy that strips
    ``Upgrade``; SSE and REST keep working.
``upgrade-status=CODE``
    Every WebSocket upgrade gets HTTP CODE (400-599) with an HTML body, as from a proxy or a
    serverless host that cannot carry WebSockets (``upgrade-status=502``: ``<html>...502 Bad
    Gateway...</html>``, ``Content-Type: text/html``); SSE and REST keep working. It stays
    until replaced, unlike ``refuse``.
``refuse=N[:RETRY_AFTER]``
    The next N connection attempts (WebSocket upgrades *and* SSE GETs) get HTTP 503 with a
    JSON body ``{"ok": false, "error": "Service unavailable"}``, with ``Retry-After`` when
    given; then connections work again. A transient overload of the server itself, where
    ``upgrade-status`` is a lasting refusal of WebSockets only.
``rate-limit=N:RETRY_AFTER``
    The next N requests of any kind (WebSocket, SSE, REST) get HTTP 429 with ``Retry-After``.
``drop-after=N``
    On each WebSocket/SSE connection, after N delivered events (the auth frame, replies such as
    ``pong``/``error`` and garbage frames do not count), the TCP connection is aborted: no close
    frame, no end of stream.
``half-open-after=N``
    After N delivered events the connection goes silent: nothing more is sent, pings are not
    answered (neither WebSocket-level nor protocol-level), nothing is read, and the TCP socket
    stays open, like a peer that vanished without a FIN.
``no-history``
    The server keeps no history it will show: ``GET /api/im/sync`` answers 404 ``Not found``
    and the docs dialect's SSE carries no ``id:`` lines and ignores ``Last-Event-ID``.
``foreign-seqs=N``
    Before each row the event log writes, N rows of a user no client knows: as on a busy real
    server, whose seqs are global, most seqs a client's log skips are other users' events (the
    docs dialect's SSE ids jump by N + 1 or more).
``trickle=MS``
    Every request (WebSocket upgrades, SSE, REST, the event log; not ``/_control``) is answered
    one byte every MS milliseconds, and the answer never ends: a status line, then a header
    line that goes on for ever. A server or a proxy that keeps a connection busy without ever
    answering, which defeats a client's per-read timeouts (only a deadline for the whole step
    stops it).
``garbage``
    Right after the auth frame a WebSocket gets the text frames ``this is not json``,
    ``[1,2,3]``, ``"just a string"`` and one binary frame; an SSE stream gets ``data: not json``.
``concurrent-handling``
    Server dialect: socket messages are handled concurrently, as the real server's
    ``ws/handler.ts`` does (it starts handling each frame without awaiting the previous one):
    each ``message.send`` is validated, stored and broadcast (or answered with its error) after
    a random delay of 0 to 5 ms, so ``message.send`` frames written back to back to one
    conversation can be stored and broadcast out of order. Other frames are handled at once, so
    a ``pong`` no longer confirms the sends before its ping. The docs dialect ignores it.

Counted faults (``refuse``, ``rate-limit``) are used up; the others stay until replaced.
Requests to ``/_control`` are never faulted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FAULT_KINDS = (
    "no-websocket",
    "upgrade-status",
    "refuse",
    "rate-limit",
    "drop-after",
    "half-open-after",
    "garbage",
    "no-history",
    "concurrent-handling",
    "foreign-seqs",
    "trickle",
)
FLAG_KINDS = ("no-websocket", "garbage", "no-history", "concurrent-handling")


class FaultSpecError(ValueError):
    """A fault specification that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    kind: str
    count: int | None = None
    retry_after: int | None = None

    def spec(self) -> str:
        """The specification this fault was parsed from, normalised."""
        if self.count is None:
            return self.kind
        text = f"{self.kind}={self.count}"
        return text if self.retry_after is None else f"{text}:{self.retry_after}"


def _non_negative(text: str, what: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {what} must be a whole number") from None
    if value < 0:
        raise FaultSpecError(f"fault {spec!r}: {what} must not be negative")
    return value


def parse_fault(spec: str) -> Fault:
    """Parse one ``--fault`` value; raise FaultSpecError with a one-line reason."""
    kind, sep, argument = spec.strip().partition("=")
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"unknown fault {spec!r} (known: {', '.join(FAULT_KINDS)})")
    if kind in FLAG_KINDS:
        if sep:
            raise FaultSpecError(f"fault {kind!r} takes no value")
        return Fault(kind)
    if not argument:
        raise FaultSpecError(f"fault {kind!r} needs a value, e.g. {kind}=3")
    count_text, colon, retry_text = argument.partition(":")
    count = _non_negative(count_text, "N", spec)
    retry_after = _non_negative(retry_text, "RETRY_AFTER", spec) if colon else None
    if kind == "rate-limit" and retry_after is None:
        raise FaultSpecError(f"fault {spec!r}: use rate-limit=N:RETRY_AFTER")
    if (
        kind
        in (
            "drop-after",
            "half-open-after",
            "upgrade-status",
            "foreign-seqs",
            "trickle",
        )
        and colon
    ):
        raise FaultSpecError(f"fault {spec!r}: {kind} takes a single number")
    if kind == "upgrade-status" and not 400 <= count <= 599:
        raise FaultSpecError(f"fault {spec!r}: CODE must be an HTTP status from 400 to 599")
    if kind == "trickle" and count == 0:
        raise FaultSpecError(f"fault {spec!r}: MS must be at least 1")
    return Fault(kind, count, retry_after)


@dataclass(frozen=True)
class Refusal:
    """How to turn a request away: status and optional Retry-After seconds."""

    fault: str
    status: int
    retry_after: int | None


class FaultState:
    """The active faults and what is left of the counted ones."""

    def __init__(self, specs: Iterable[str] = ()) -> None:
        self._faults: list[Fault] = []
        self._refuse_left = 0
        self._refuse_retry: int | None = None
        self._rate_left = 0
        self._rate_retry: int | None = None
        self.replace(specs)

    def replace(self, specs: Iterable[str]) -> None:
        """Install a new fault list (all specs are checked before anything changes)."""
        faults = [parse_fault(spec) for spec in specs]
        self._faults = faults
        self._refuse_left, self._refuse_retry = 0, None
        self._rate_left, self._rate_retry = 0, None
        for fault in faults:
            if fault.kind == "refuse":
                self._refuse_left, self._refuse_retry = fault.count or 0, fault.retry_after
            elif fault.kind == "rate-limit":
                self._rate_left, self._rate_retry = fault.count or 0, fault.retry_after

    def specs(self) -> list[str]:
        return [fault.spec() for fault in self._faults]

    def _value(self, kind: str) -> int | None:
        for fault in self._faults:
            if fault.kind == kind:
                return fault.count
        return None

    def _has(self, kind: str) -> bool:
        return any(fault.kind == kind for fault in self._faults)

    @property
    def no_websocket(self) -> bool:
        return self._has("no-websocket")

    @property
    def no_history(self) -> bool:
        return self._has("no-history")

    @property
    def garbage(self) -> bool:
        return self._has("garbage")

    @property
    def concurrent_handling(self) -> bool:
        return self._has("concurrent-handling")

    @property
    def upgrade_status(self) -> int | None:
        return self._value("upgrade-status")

    @property
    def trickle(self) -> float | None:
        """Seconds between two bytes of every answer, or None."""
        ms = self._value("trickle")
        return None if ms is None else ms / 1000

    @property
    def drop_after(self) -> int | None:
        return self._value("drop-after")

    @property
    def half_open_after(self) -> int | None:
        return self._value("half-open-after")

    @property
    def foreign_seqs(self) -> int:
        return self._value("foreign-seqs") or 0

    def take_rate_limit(self) -> Refusal | None:
        """Use up one rate-limited request, if any are left."""
        if self._rate_left <= 0:
            return None
        self._rate_left -= 1
        return Refusal("rate-limit", 429, self._rate_retry)

    def take_refusal(self) -> Refusal | None:
        """Use up one refused connection attempt, if any are left."""
        if self._refuse_left <= 0:
            return None
        self._refuse_left -= 1
        return Refusal("refuse", 503, self._refuse_retry)
