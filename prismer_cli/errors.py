"""The exit statuses and the project's own errors (docs/cli.md "Exit status").

Library exceptions are translated into these errors at the transport's edge.

PrismerError                    exit 1  unexpected
├── UsageError                  exit 2  bad option, argument, configuration
├── AuthError                   exit 3  the server rejected the token; never retried
├── TransportError              exit 4  worth a retry, unless the policy says no
│   ├── ConnectError            could not connect (refused, DNS, TLS, 5xx, 429)
│   │   └── NoWebSocket         the upgrade was refused: an SSE fallback may work
│   └── ConnectionLost          an established connection went away
│       └── PartialWrite        ... while frames were written: how many had started
├── CommandRejected             exit 5  the server answered a command with an error
├── TemporaryFailure            exit 75 a transient local condition: try again later
├── NotAccepted                 exit 124  --timeout came before a handler accepted an event
└── Interrupted                 exit 130 or 143: SIGINT / SIGTERM
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The one table of what `prismer-rt` returns to the shell."""

    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    CONNECTION = 4
    REJECTED = 5
    INVALID_INPUT = 6
    TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: a restart later may succeed
    TIMEOUT = 124
    INTERRUPTED = 130
    TERMINATED = 143


class PrismerError(Exception):
    status = ExitStatus.ERROR


class UsageError(PrismerError):
    status = ExitStatus.USAGE


class AuthError(PrismerError):
    status = ExitStatus.AUTH


class TransportError(PrismerError):
    status = ExitStatus.CONNECTION


class ConnectError(TransportError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoWebSocket(ConnectError):
    """The upgrade was refused. `lasting`: by something that will always refuse it (a proxy
    without WebSockets); else by a 5xx or 429, worth one SSE or REST try at once and a
    WebSocket again on the next connection."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, lasting: bool = True
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.lasting = lasting


class ConnectionLost(TransportError):
    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code  # the server's close code, when it sent a close frame


class PartialWrite(ConnectionLost):
    """A write of several frames failed; the first `started` frames may have reached the peer."""

    def __init__(self, message: str, started: int) -> None:
        super().__init__(message)
        self.started = started


class CommandRejected(PrismerError):
    status = ExitStatus.REJECTED


class TemporaryFailure(PrismerError):
    """A transient local condition (a cursor file held by another listen, a full disk): not a
    mistake in the configuration, so a service manager may restart the command (exit 75)."""

    status = ExitStatus.TEMPFAIL


class NotAccepted(PrismerError):
    """With --cursor-file, a handler (--forward-to, --exec) had not accepted an event when
    --timeout ended the run: the cursor stays before it, and the next run hands it on first."""

    status = ExitStatus.TIMEOUT


class Interrupted(PrismerError):
    def __init__(self, signum: int) -> None:
        super().__init__("interrupted")
        self.status = ExitStatus.TERMINATED if signum == 15 else ExitStatus.INTERRUPTED
