"""What ``prismer-rt serve`` can be told (:class:`ServerOptions`, whose defaults are the
documented ones) and the one check of a set of options (:func:`problem_with`).

The command line that fills these options is declared once, in
:mod:`prismer_cli.server.command`.
"""

from __future__ import annotations

from dataclasses import dataclass

DIALECTS = ("docs", "server")
SEVEN_DAYS = 7 * 24 * 3600.0
WS_MAX_PAYLOAD = 100 * 2**20  # the default maxPayload of Node's ws, which the real server keeps


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    dialect: str = "docs"  # one of DIALECTS
    tokens: tuple[str, ...] = ()  # each "TOKEN" or "TOKEN=NAME"; empty = open mode
    faults: tuple[str, ...] = ()  # fault specs, see prismer_cli.server.faults
    auth_timeout: float = 10.0  # server dialect: close 4001 after this without auth
    ack_timeout: float = 5.0  # server dialect: unacked frame queued after this
    heartbeat: float = 30.0  # server dialect SSE ": heartbeat" interval
    token_ttl: float = SEVEN_DAYS  # lifetime of issued tokens, like JWT_EXPIRES_IN
    max_message_bytes: int = WS_MAX_PAYLOAD  # largest WebSocket message / REST body accepted


def problem_with(options: ServerOptions) -> str | None:
    """Why these options cannot work (one line), or None."""
    from prismer_cli.server.faults import FaultSpecError, parse_fault
    from prismer_cli.server.users import parse_token_spec

    if options.dialect not in DIALECTS:
        return f"unknown dialect {options.dialect!r} (use docs or server)"
    if not 0 <= options.port <= 65535:
        return f"port {options.port} is out of range"
    if options.max_message_bytes < 1:
        return "max-message-bytes must be at least 1"
    for name in ("auth_timeout", "ack_timeout", "heartbeat", "token_ttl"):
        value = getattr(options, name)
        if not value > 0 or value == float("inf"):  # nan fails the first test
            return f"{name.replace('_', '-')} must be a positive number of seconds"
    try:
        for spec in options.tokens:
            parse_token_spec(spec)
        for spec in options.faults:
            parse_fault(spec)
    except (ValueError, FaultSpecError) as exc:
        return str(exc)
    return None
