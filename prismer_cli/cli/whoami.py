"""`whoami`: who the token is, from GET /api/im/me and the token's own claims, as JSON."""

from __future__ import annotations

import os
import sys

import typer

from prismer_cli.cli.options import CONNECTION
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log


@CONNECTION
def whoami(ctx: typer.Context, g: CommandLine) -> None:
    """Print who the token is: {"userId", "username", "expiresAt", "source", ...}.

    Asks the server (GET /api/im/me) and reads the token's claims; exit 3 if the server
    refuses the token. Nothing is refreshed or written.
    """

    def job(log: Log) -> ExitStatus:
        import time

        from prismer_cli.auth import api
        from prismer_cli.auth.claims import claims_of, expiry_note, expiry_warning, iso
        from prismer_cli.auth.keeper import what_to_do
        from prismer_cli.config import resolve
        from prismer_cli.errors import AuthError, CommandRejected, UsageError
        from prismer_cli.output import Output
        from prismer_cli.redact import redact
        from prismer_cli.tuning import from_env

        settings = resolve(g, os.environ, stdin=sys.stdin.buffer)
        token, url = settings.token.value, settings.url.value
        log.secret = token
        if log.trace is not None:
            log.trace.secret(token)
        for warning in settings.warnings:
            log.warning(warning)
        if not token or not url:
            raise UsageError("no token: give --token-file, set PRISMER_TOKEN, or run register")
        now = time.time()
        claims = claims_of(token)
        expiring = expiry_warning(claims, now)
        if expiring:
            log.warning(expiring)
        try:
            data = api.me(url, token, from_env(os.environ).timeouts.connect, log.trace)
        except api.Refused as exc:
            if exc.status in (401, 403):
                note = expiry_note(claims, now) if claims and claims.expired(now) else None
                hint = (
                    f": the token {note}; listen and send refresh it by themselves (whoami only"
                    f" reads); if the server refuses that too, {what_to_do(settings.token.source)}"
                    if note
                    else ""
                )
                raise AuthError(f"the server rejected the token ({exc}){hint}") from None
            raise CommandRejected(f"the server refused GET /api/im/me ({exc})") from None
        user = data.get("user") if isinstance(data.get("user"), dict) else {}
        assert isinstance(user, dict)
        exp = claims.exp if claims else None
        record = {
            "userId": user.get("id") or (claims.sub if claims else None),
            "username": user.get("username") or (claims.username if claims else None),
            "displayName": user.get("displayName"),
            "role": user.get("role"),
            "expiresAt": iso(exp) if exp is not None else None,
            "expiresInSeconds": max(0, int(exp - now)) if exp is not None else None,
            "source": settings.token.source,
            "url": redact(url),
        }
        out = Output()
        out.record(record)
        out.flush()
        return ExitStatus.OK

    execute(job, g)


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: prismer-rt whoami | jq -r .expiresAt")(whoami)
