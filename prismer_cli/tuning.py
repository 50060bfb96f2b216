"""The timers and retry bounds, each default written once (README "Tuning").

Tests and unusual networks change the timers through the environment (PRISMER_RT_*); the
commands read them once, with `from_env`, and hand them on typed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prismer_cli.errors import UsageError
from prismer_cli.records import Frozen

SEND_RETRIES = 3  # send and mark-read: reconnections per batch, and REST retries per request
# The largest WebSocket message the server reads: the real server keeps Node ws's default
# maxPayload (100 MiB); a bigger one makes it close the connection (1009).
MAX_MESSAGE_BYTES = 100 * 2**20
# A durable listen's last look-ups in the event log at exit (placing the last live events, the
# docs dialect's open gap) get this long of their own, whatever is left of --timeout.
FINAL_GRACE = 2.0


class Timeouts(Frozen):
    connect: float  # TCP + TLS + upgrade; also one REST request
    auth: float  # first frame after the upgrade
    ping_interval: float  # idle time before a keepalive ping
    ping_timeout: float  # no byte at all this long after a ping: the peer is gone
    sse_silence: float  # no data and no comment this long: the stream is dead
    send: float  # send, mark-read: a command's attempts (connect, retries) end by then

    def __init__(
        self,
        connect: float = 10.0,
        auth: float = 10.0,
        ping_interval: float = 15.0,
        ping_timeout: float = 10.0,
        sse_silence: float = 75.0,
        send: float = 30.0,
    ) -> None:
        self._init(locals())


class Backoff(Frozen):
    """Delays between retries: `initial` doubling up to `cap` (see retry.py)."""

    initial: float
    cap: float

    def __init__(self, initial: float = 1.0, cap: float = 30.0) -> None:
        self._init(locals())


class Handing(Frozen):
    """--forward-to and --exec: the server's webhook timers (services/webhook.service.ts)."""

    forward_timeout: float  # one POST to --forward-to
    first_retry: float  # after the first failed attempt
    second_retry: float  # after the second; then, with --cursor-file, the backoff

    def __init__(
        self, forward_timeout: float = 10.0, first_retry: float = 2.0, second_retry: float = 5.0
    ) -> None:
        self._init(locals())


class Tuning(Frozen):
    timeouts: Timeouts
    backoff: Backoff
    max_message_bytes: int  # PRISMER_RT_MAX_MESSAGE_BYTES
    handing: Handing

    def __init__(
        self,
        timeouts: Timeouts | None = None,
        backoff: Backoff | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        handing: Handing | None = None,
    ) -> None:
        timeouts = Timeouts() if timeouts is None else timeouts
        backoff = Backoff() if backoff is None else backoff
        handing = Handing() if handing is None else handing
        self._init(locals())


def from_env(env: Mapping[str, str]) -> Tuning:
    """The defaults, with each PRISMER_RT_* variable that is set in their place."""
    t, b, h = Timeouts(), Backoff(), Handing()
    return Tuning(
        Timeouts(
            connect=_seconds(env, "PRISMER_RT_CONNECT_TIMEOUT", t.connect),
            ping_interval=_seconds(env, "PRISMER_RT_PING_INTERVAL", t.ping_interval),
            ping_timeout=_seconds(env, "PRISMER_RT_PING_TIMEOUT", t.ping_timeout),
            sse_silence=_seconds(env, "PRISMER_RT_SSE_SILENCE", t.sse_silence),
            send=_seconds(env, "PRISMER_RT_SEND_TIMEOUT", t.send),
        ),
        Backoff(
            initial=_seconds(env, "PRISMER_RT_BACKOFF_INITIAL", b.initial),
            cap=_seconds(env, "PRISMER_RT_BACKOFF_MAX", b.cap),
        ),
        int(_seconds(env, "PRISMER_RT_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES)),
        Handing(
            forward_timeout=_seconds(env, "PRISMER_RT_FORWARD_TIMEOUT", h.forward_timeout),
            first_retry=_seconds(env, "PRISMER_RT_HANDLER_RETRY_FIRST", h.first_retry),
            second_retry=_seconds(env, "PRISMER_RT_HANDLER_RETRY_SECOND", h.second_retry),
        ),
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds > 0 or math.isinf(seconds):  # nan and inf too: a bound that never comes
        raise UsageError(f"{name} must be a positive finite number of seconds, not {value!r}")
    return seconds
