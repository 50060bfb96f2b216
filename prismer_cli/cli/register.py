"""`register USERNAME`: a new user on the server, its token kept in the default token file."""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer

from prismer_cli.cli.options import CONNECTION
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log

USERNAME = re.compile(r"[A-Za-z0-9_-]{3,32}")  # as the server checks it (docs/protocol.md)
TYPES = ("agent", "human")


@CONNECTION
def register_user(
    ctx: typer.Context,
    g: CommandLine,
    username: Annotated[
        str, typer.Argument(metavar="USERNAME", help="3-32 letters, digits, '_' or '-'.")
    ],
    display_name: Annotated[
        str | None,
        typer.Option(
            "--display-name",
            metavar="NAME",
            help="The name people see. [default: the username]",
            show_default=False,
        ),
    ] = None,
    type_: Annotated[
        str, typer.Option("--type", metavar="agent|human", help="The kind of user.")
    ] = "agent",
    force: Annotated[
        bool, typer.Option("--force", help="Replace a token file that already exists.")
    ] = False,
) -> None:
    """Register a user on the server and keep its token for the other commands.

    The token goes to $XDG_CONFIG_HOME/prismer-rt/token (mode 0600), or to the profile's
    token_file, where the other commands find it; the user record is printed as JSON, without
    the token.
    """

    def job(log: Log) -> ExitStatus:
        from pathlib import Path

        from prismer_cli.auth import api
        from prismer_cli.auth.stores import CannotSave, TokenFile, write_atomically
        from prismer_cli.config import default_token_path, profile_value, resolve
        from prismer_cli.errors import CommandRejected, PrismerError, UsageError
        from prismer_cli.output import Output
        from prismer_cli.records import replace
        from prismer_cli.tuning import from_env

        if not USERNAME.fullmatch(username):
            raise UsageError(f"usernames are 3 to 32 letters, digits, '_' or '-', not {username!r}")
        if type_ not in TYPES:
            raise UsageError(f"--type must be agent or human, not {type_!r}")
        # Only the URL is wanted: a stand-in token keeps resolve from reading any token file
        # (the profile's token_file may not exist yet). Registering sends no token.
        settings = resolve(replace(g, token="none", token_file=None), os.environ)
        named = profile_value(g, os.environ, "token_file")
        target = Path(named).expanduser() if isinstance(named, str) else None
        target = target or default_token_path(os.environ)
        if target.exists() and not force:
            raise UsageError(f"{target} already exists; give --force to replace the token in it")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(f"cannot create {target.parent}: {exc}") from None
        assert settings.url.value is not None
        body = {"type": type_, "username": username, "displayName": display_name or username}
        try:
            timeout = from_env(os.environ).timeouts.connect
            data = api.register(settings.url.value, body, timeout, log.trace)
        except api.Refused as exc:
            raise CommandRejected(f"the server refused the registration ({exc})") from None
        token = data.pop("token")
        log.secret = token
        try:
            write_atomically(target, (token + "\n").encode("utf-8"), mode=0o600)
        except CannotSave as exc:
            raise PrismerError(f"registered {username}, but {exc}") from None
        log.info(f"saved the token to {target}")
        try:
            used = resolve(g, os.environ).token
        except PrismerError:
            used = None
        if used is not None and used.store != TokenFile(target):
            log.warning(f"other commands will use the token of {used.source}, not {target}")
        out = Output()
        out.record({**data, "tokenFile": str(target)})
        out.flush()
        return ExitStatus.OK

    execute(job, g)


def register(app: typer.Typer) -> None:
    app.command(
        "register", epilog="Example: prismer-rt --url http://127.0.0.1:8765 register my-agent"
    )(register_user)
