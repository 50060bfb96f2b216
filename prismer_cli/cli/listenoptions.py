"""The option groups of listen and subscribe alone (their filters, the durable mode, the
handoff to --forward-to and --exec): apart from options.py, so that no other command builds
them (~2 ms of a one-shot `send`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from prismer_cli.cli.options import OptionGroup, _number, _repeatable, _switch, _value


@dataclass(frozen=True)
class ListenFlags:
    type_: list[str] | None = None
    conversation: list[str] | None = None
    match: list[str] | None = None
    stop_after: int | None = None  # --count
    timeout: float | None = None
    no_reconnect: bool = False
    max_retries: int | None = None
    meta: bool = False
    ignore_self: bool = False
    since: str = "now"
    cursor_file: str | None = None
    no_follow: bool = False


# The options of listen and subscribe.
LISTEN = OptionGroup(
    ListenFlags,
    type_=_repeatable(
        "--type", "-t", metavar="TYPE", text="Keep only events of this type (repeatable)."
    ),
    conversation=_repeatable(
        "--conversation",
        "-c",
        metavar="ID",
        text="Keep only events of this conversation, or about it (repeatable).",
    ),
    match=_repeatable(
        "--match",
        "-m",
        metavar="PATH=VALUE",
        text=(
            "Keep only events whose field PATH (dotted into the envelope, e.g. "
            "payload.taskId) equals VALUE, as JSON when it parses, else as a string "
            "(repeatable: all must hold)."
        ),
    ),
    stop_after=_number(
        "--count", "-n", metavar="N", text="Exit 0 after N printed events.", at_least=1
    ),
    timeout=_number(
        "--timeout",
        metavar="SECONDS",
        text="Stop after SECONDS; exit 124 if --count was not reached.",
        at_least=0.0,
    ),
    no_reconnect=_switch("--no-reconnect", text="Exit 4 when the connection is lost."),
    max_retries=_number(
        "--max-retries",
        metavar="N",
        text="Give up (exit 4) after N consecutive failed retries; unlimited by default.",
        at_least=0,
    ),
    meta=_switch(
        "--meta",
        text="Also print lifecycle records (prismer-rt.connected, .reconnecting, .disconnected).",
    ),
    ignore_self=_switch("--ignore-self", text="Drop events sent by the authenticated user itself."),
    since=Annotated[
        str,
        typer.Option(
            "--since",
            metavar="SEQ|all|now",
            help="First print the stored events after SEQ (all: from the start) from the "
            "server's event log, then the live ones.",
        ),
    ],
    cursor_file=_value(
        "--cursor-file",
        metavar="FILE",
        text="Start after the cursor saved in FILE (else as --since says); save the cursor "
        "of each event written there. One listen per FILE at a time.",
    ),
    no_follow=_switch(
        "--no-follow",
        text=(
            "Print the stored events and exit 0 without going live (the cron mode); 124 "
            "when --count is given and not reached."
        ),
    ),
)


@dataclass(frozen=True)
class HandoffFlags:
    forward_to: str | None = None
    webhook_secret: str | None = None
    forward_replies: bool = False
    exec_: str | None = None
    exec_timeout: float | None = None  # None: 60 s

    @property
    def active(self) -> bool:
        return self.forward_to is not None or self.exec_ is not None


# The options of listen and subscribe that hand each event to a handler (cli/handoff.py).
HANDOFF = OptionGroup(
    HandoffFlags,
    forward_to=_value(
        "--forward-to",
        metavar="URL",
        text="POST each message.new (not the user's own) to URL as Prismer Cloud's webhooks "
        "do, signed; a 2xx accepts it.",
    ),
    webhook_secret=_value(
        "--webhook-secret",
        metavar="SECRET",
        text="Sign with SECRET; env PRISMER_WEBHOOK_SECRET, config webhook_secret, else the "
        "server's default dev-webhook-secret.",
    ),
    forward_replies=_switch(
        "--forward-replies",
        text='Send a handler\'s {"content"} answer to the conversation, once per message.',
    ),
    exec_=_value(
        "--exec",
        metavar="CMD",
        text="Run `sh -c CMD` for each event, its line on stdin and in PRISMER_EVENT; exit 0 "
        "accepts it.",
    ),
    exec_timeout=_number(
        "--exec-timeout",
        metavar="SECONDS",
        text="End a command running longer (a failure). [default: 60]",
        at_least=0.001,
    ),
)
