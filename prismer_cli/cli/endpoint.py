"""The connection options resolved (config.py) into an Endpoint, and the timers (tuning.py).

The token comes with a TokenKeeper (auth/keeper.py) that refreshes it before connecting and,
for `listen`, while it runs; a reload (SIGHUP) resolves the options again.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from prismer_cli.auth.keeper import TokenKeeper, TokenSource
from prismer_cli.config import CommandLine, resolve
from prismer_cli.errors import UsageError
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import DIALECTS
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Tuning, from_env


def endpoint_for(g: CommandLine, log: Log, *, stdin_free: bool) -> tuple[Endpoint, Tuning]:
    """Resolve settings into an Endpoint whose token is refreshed if it is due."""
    keeper, tuning = keeper_for(g, log, stdin_free=stdin_free)
    return keeper.fresh(), tuning


def keeper_for(g: CommandLine, log: Log, *, stdin_free: bool) -> tuple[TokenKeeper, Tuning]:
    """Resolve settings into a TokenKeeper that can re-read them (SIGHUP)."""
    tuning = from_env(os.environ)
    source = _source(g, log, tuning, sys.stdin.buffer if stdin_free else None)
    return TokenKeeper(
        source,
        log,
        retry_delay=tuning.backoff.cap,
        reload=lambda: _source(g, log, tuning, None, again=True),
    ), tuning


def _source(
    g: CommandLine, log: Log, tuning: Tuning, stdin: BinaryIO | None, *, again: bool = False
) -> TokenSource:
    """Resolve settings (`again`: a reload); warns about a token typed on the command line."""
    settings = resolve(g, os.environ, stdin=stdin, again=again)
    log.secret = settings.token.value
    if log.trace is not None:
        log.trace.secret(settings.token.value)
    for warning in settings.warnings:
        log.warning(warning)
    if g.token:
        log.warning(
            "a token on the command line is visible to other users (ps); "
            "prefer --token-file or PRISMER_TOKEN"
        )
    if not settings.token.value:
        raise UsageError(
            "no token: give --token-file, set PRISMER_TOKEN, or run `prismer-rt register NAME`"
            " (or `prismer-py register`)"
        )
    assert settings.url.value is not None and settings.transport.value and settings.dialect.value
    endpoint = Endpoint(
        url=settings.url.value,
        token=settings.token.value,
        transport=settings.transport.value,
        dialect=DIALECTS.get(settings.dialect.value),
        timeouts=tuning.timeouts,
        trace=log.trace,
    )
    return TokenSource(
        endpoint, settings.token.store, settings.token.source, refresh=not settings.no_refresh
    )
