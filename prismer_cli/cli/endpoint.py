"""The connection options resolved (config.py) into an Endpoint, and the timers (tuning.py)."""

from __future__ import annotations

import os
import sys

from prismer_cli.config import CommandLine, resolve
from prismer_cli.errors import UsageError
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import DIALECTS
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Tuning, from_env


def endpoint_for(g: CommandLine, log: Log, *, stdin_free: bool) -> tuple[Endpoint, Tuning]:
    """Resolve settings into an Endpoint; warns about a token typed on the command line."""
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
    tuning = from_env(os.environ)
    assert settings.url.value is not None and settings.transport.value and settings.dialect.value
    return Endpoint(
        url=settings.url.value,
        token=settings.token.value,
        transport=settings.transport.value,
        dialect=DIALECTS.get(settings.dialect.value),
        timeouts=tuning.timeouts,
    ), tuning
