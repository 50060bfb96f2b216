"""The options of listen and subscribe that hand each event to a handler (--forward-to,
--exec; prismer_cli/handoff/), and the Handoff they make."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

import typer

from prismer_cli.auth.keeper import TokenKeeper
from prismer_cli.cli.options import OptionGroup, finite
from prismer_cli.config import CommandLine, webhook_secret_setting
from prismer_cli.errors import UsageError
from prismer_cli.handoff import Context, Handoff, HandoffOptions, check_url
from prismer_cli.handoff.webhook import DEFAULT_SECRET
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.retry import Deadline
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Tuning


@dataclass(frozen=True)
class HandoffFlags:
    forward_to: str | None = None
    webhook_secret: str | None = None
    forward_replies: bool = False
    exec_: str | None = None
    exec_timeout: float = 60.0

    @property
    def active(self) -> bool:
        return self.forward_to is not None or self.exec_ is not None

    def check(self) -> None:
        """Refuse what cannot work before anything connects (exit 2)."""
        if self.forward_to is not None:
            check_url(self.forward_to)
        elif self.forward_replies:
            raise UsageError(
                "--forward-replies sends what --forward-to's handler answers: give both"
            )
        if self.exec_ is not None and not self.exec_.strip():
            raise UsageError("--exec needs a command")


HANDOFF = OptionGroup(
    HandoffFlags,
    forward_to=Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            metavar="URL",
            help="POST each message.new (not the user's own) to URL as Prismer Cloud's "
            "webhooks do, signed; a 2xx accepts it.",
            show_default=False,
        ),
    ],
    webhook_secret=Annotated[
        str | None,
        typer.Option(
            "--webhook-secret",
            metavar="SECRET",
            help="Sign with SECRET; env PRISMER_WEBHOOK_SECRET, config webhook_secret, "
            "else the server's default dev-webhook-secret.",
            show_default=False,
        ),
    ],
    forward_replies=Annotated[
        bool,
        typer.Option(
            "--forward-replies",
            help='Send a handler\'s {"content"} answer to the conversation, once per message.',
        ),
    ],
    exec_=Annotated[
        str | None,
        typer.Option(
            "--exec",
            metavar="CMD",
            help="Run `sh -c CMD` for each event, its line on stdin and in PRISMER_EVENT; "
            "exit 0 accepts it.",
            show_default=False,
        ),
    ],
    exec_timeout=Annotated[
        float,
        typer.Option(
            "--exec-timeout",
            min=0.001,
            callback=finite,
            metavar="SECONDS",
            help="End a command running longer (a failure).",
        ),
    ],
)


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
        exec_timeout=flags.exec_timeout,
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
