"""The Handoff that listen's --forward-to and --exec make (prismer_cli/handoff/); their options
are declared in listenoptions.py (HANDOFF). Imported when a command runs, never for --help."""

from __future__ import annotations

import os

from prismer_cli.auth.keeper import TokenKeeper
from prismer_cli.cli.listenoptions import HandoffFlags
from prismer_cli.config import CommandLine, webhook_secret_setting
from prismer_cli.errors import UsageError
from prismer_cli.handoff import Context, Handoff, HandoffOptions, check_url
from prismer_cli.handoff.webhook import DEFAULT_SECRET
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.retry import Deadline
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Tuning

EXEC_TIMEOUT = 60.0  # --exec-timeout's default


def check(flags: HandoffFlags) -> None:
    """Refuse what cannot work before anything connects (exit 2)."""
    if flags.forward_to is not None:
        check_url(flags.forward_to)
    elif flags.forward_replies:
        raise UsageError("--forward-replies sends what --forward-to's handler answers: give both")
    if flags.exec_ is not None and not flags.exec_.strip():
        raise UsageError("--exec needs a command")


def make_handoff(
    flags: HandoffFlags,
    g: CommandLine,
    *,
    endpoint: Endpoint,
    keeper: TokenKeeper,
    tuning: Tuning,
    log: Log,
    out: Output,
    timeout: float | None,
    patient: bool,
    meta: bool,
) -> Handoff:
    """The Handoff of these flags, its secret resolved and the listening user asked for."""
    secret = DEFAULT_SECRET
    if flags.forward_to is not None:
        setting = webhook_secret_setting(flags.webhook_secret, g, os.environ, DEFAULT_SECRET)
        if flags.webhook_secret:
            log.warning(
                "a secret on the command line is visible to other users (ps); "
                "prefer PRISMER_WEBHOOK_SECRET or webhook_secret in the config"
            )
        if setting.source == "default":
            log.warning(
                f"--forward-to signs with the server's default secret {DEFAULT_SECRET!r}: give "
                "--webhook-secret, PRISMER_WEBHOOK_SECRET or webhook_secret in the config"
            )
        assert setting.value is not None
        secret = setting.value
    options = HandoffOptions(
        forward_to=flags.forward_to,
        secret=secret,
        forward_replies=flags.forward_replies,
        exec_command=flags.exec_,
        exec_timeout=EXEC_TIMEOUT if flags.exec_timeout is None else flags.exec_timeout,
        patient=patient,
        meta=meta,
    )
    me = _whoami(endpoint, log) if flags.forward_to is not None else None
    if flags.forward_to is not None and me is None:
        log.warning("the server did not say which user this is: its own messages are forwarded too")
    context = Context(
        endpoint=endpoint,
        log=log,
        out=out,
        deadline=Deadline(timeout),
        token=lambda: keeper.token,
        me=me,
        handing=tuning.handing,
        backoff=tuning.backoff,
        environ=dict(os.environ),
    )
    return Handoff(options, context)


def _whoami(endpoint: Endpoint, log: Log) -> str | None:
    from prismer_cli.transport.rest import RestClient

    rest = RestClient(endpoint, log)
    try:
        return rest.whoami()
    finally:
        rest.close()
