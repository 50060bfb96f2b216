"""`config show`: each setting, where it came from, and the token masked."""

from __future__ import annotations

import os
import sys

import typer

from prismer_cli.cli.options import CONNECTION
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log

config_app = typer.Typer(
    help="Inspect the configuration.",
    epilog="Example: prismer-rt config show",
    no_args_is_help=True,
)


@config_app.command("show", epilog="Example: PRISMER_PROFILE=staging prismer-rt config show")
@CONNECTION
def config_show(
    ctx: typer.Context,
    g: CommandLine,
) -> None:
    """Print each setting, where it came from, and the token masked."""

    def job(log: Log) -> ExitStatus:
        from prismer_cli.config import config_path, resolve
        from prismer_cli.redact import mask, redact

        settings = resolve(g, os.environ, stdin=sys.stdin.buffer)
        log.secret = settings.token.value
        for warning in settings.warnings:
            log.warning(warning)
        rows = [
            ("url", redact(settings.url.value or ""), settings.url.source),
            ("token", mask(settings.token.value), settings.token.source),
            *_token_rows(settings.token.value, settings.no_refresh, log),
            ("transport", settings.transport.value, settings.transport.source),
            ("dialect", settings.dialect.value, settings.dialect.source),
            ("output", *_output(g)),
            ("profile", settings.profile or "(none)", _profile_source(g)),
            ("config file", str(config_path(os.environ)), ""),
        ]
        from prismer_cli.output import Output

        out = Output()
        for name, value, source in rows:
            row = f"{name:<12} {value}" + (f"    ({source})" if source else "")
            out.line(row.encode())
        out.flush()
        return ExitStatus.OK

    execute(job, g)


def _token_rows(token: str | None, no_refresh: bool, log: Log) -> list[tuple[str, str, str]]:
    """Who the token is and when it expires, from its claims (none for an opaque token)."""
    from prismer_cli.auth.claims import claims_of, expiry_note, expiry_warning

    claims = claims_of(token)
    if claims is None:
        return []
    warning = expiry_warning(claims)
    if warning:
        log.warning(warning)
    who = f"{claims.username or '?'} ({claims.sub or 'no sub'})"
    refresh = "off" if no_refresh else "on, when less than min(24 h, half its lifetime) remains"
    return [
        ("user", who, "token claims"),
        ("expiry", expiry_note(claims) or "never", "token claims"),
        ("refresh", refresh, ""),
    ]


def _output(g: CommandLine) -> tuple[str, str]:
    """The view of events and results without --pretty/--format/--json, and its source."""
    from prismer_cli.config import config_path, profile_value
    from prismer_cli.view.choice import default_output

    profile = g.profile or os.environ.get("PRISMER_PROFILE")
    where = str(config_path(os.environ)) + (f" [profiles.{profile}]" if profile else "")
    return default_output(profile_value(g, os.environ, "output"), os.environ, where)


def _profile_source(g: CommandLine) -> str:
    if g.profile:
        return "--profile"
    return "env PRISMER_PROFILE" if os.environ.get("PRISMER_PROFILE") else ""


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
