"""`listen` and `subscribe`: the listen engine (prismer_cli/listen/) behind their options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from prismer_cli import signals
from prismer_cli.cli.listenoptions import HANDOFF, LISTEN, HandoffFlags, ListenFlags
from prismer_cli.cli.options import CONNECTION, EVENT_OUTPUT
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log
from prismer_cli.view import ViewFlags

if TYPE_CHECKING:
    from prismer_cli.listen.durableoptions import DurableOptions


def _durable_options(flags: ListenFlags) -> DurableOptions | None:
    """--since, --cursor-file, --no-follow: the durable mode (listen/durable.py, which reads the
    event log over requests) is imported only when one of them is given."""
    if flags.since == "now" and flags.cursor_file is None and not flags.no_follow:
        return None
    from prismer_cli.listen.durableoptions import DurableOptions

    options = DurableOptions(flags.since, flags.cursor_file, flags.no_follow)
    options.check()  # a bad --since or --cursor-file: exit 2 before connecting
    return options


def _listen(
    g: CommandLine,
    subscribe: tuple[str, ...],
    flags: ListenFlags,
    output: ViewFlags,
    handing: HandoffFlags,
) -> None:
    def job(log: Log) -> ExitStatus:
        from prismer_cli.cli.endpoint import keeper_for
        from prismer_cli.listen.engine import ListenOptions, listen
        from prismer_cli.listen.filters import Filters
        from prismer_cli.listen.matcher import Match
        from prismer_cli.output import close_on_hangup
        from prismer_cli.retry import Deadline, Policy
        from prismer_cli.view.choice import choose_for, event_output
        from prismer_cli.view.names import RestNames, UserNames

        durable_options = _durable_options(flags)  # a bad --since or --cursor-file: exit 2
        deadline = Deadline(flags.timeout)  # --timeout counts from here, a token refresh included
        if handing.active or handing.forward_replies:  # the hand-off (and requests): only then
            from prismer_cli.cli.handoff import check, make_handoff

            check(handing)
        keeper, tuning = keeper_for(g, log, stdin_free=True)

        def reload() -> None:  # SIGHUP, at any moment (from the signal watcher thread)
            log.info("SIGHUP: the configuration is re-read before the next connection")
            keeper.request_reload()

        signals.listening(reload=reload)
        view = choose_for(output, g)
        endpoint = keeper.fresh(deadline=deadline)
        out = event_output(view, UserNames(RestNames(endpoint, log)))
        hand = None
        if handing.active:
            hand = make_handoff(
                handing,
                g,
                endpoint=endpoint.until(deadline),
                keeper=keeper,
                tuning=tuning,
                log=log,
                out=out,
                timeout=flags.timeout,
                patient=flags.cursor_file is not None,
                meta=flags.meta,
            )
        options = ListenOptions(
            filters=Filters(
                frozenset(flags.type_ or ()),
                frozenset(flags.conversation or ()) | frozenset(subscribe),
                flags.ignore_self,
                tuple(Match.parse(spec) for spec in flags.match or ()),
            ),
            subscribe=subscribe,
            count=flags.stop_after,
            timeout=flags.timeout,
            policy=Policy(tuning.backoff, 0 if flags.no_reconnect else flags.max_retries),
            meta=flags.meta or view.mode == "pretty",  # the human view shows the lifecycle anyway
            hand=hand,
            deadline=deadline,
        )
        durable = None
        if durable_options is not None:
            from prismer_cli.listen.cron import no_follow
            from prismer_cli.listen.durable import Durable

            durable = Durable(
                endpoint,
                durable_options,
                options.filters,
                log,
                meta=options.meta,
                token=lambda: keeper.token,
                hand=hand,
            )
        try:
            if durable is not None and flags.no_follow:
                return no_follow(durable, out, options.count, deadline)
            if durable is not None:  # the cursor's resume point, with the current token
                keeper.open = durable.connect
            close_on_hangup()
            # the keeper's connect: the current token, refreshed when due; SIGHUP re-reads
            return listen(endpoint, options, out, log, durable, connect=keeper.connect)
        finally:
            keeper.close()
            if hand is not None:
                hand.close()

    execute(job, g)


@CONNECTION
@EVENT_OUTPUT
@HANDOFF
@LISTEN
def listen(
    ctx: typer.Context,
    g: CommandLine,
    flags: ListenFlags,
    output: ViewFlags,
    handing: HandoffFlags,
) -> None:
    """Print every event as one line of JSON (NDJSON) on stdout.

    Reconnects with exponential backoff (1 s doubling to 30 s, with jitter) unless
    --no-reconnect; falls back to Server-Sent Events when no WebSocket can be had.
    """
    _listen(g, (), flags, output, handing)


@CONNECTION
@EVENT_OUTPUT
@HANDOFF
@LISTEN
def subscribe(
    ctx: typer.Context,
    g: CommandLine,
    flags: ListenFlags,
    output: ViewFlags,
    handing: HandoffFlags,
    conversation_ids: Annotated[
        list[str],
        typer.Argument(metavar="CONVERSATION_ID...", help="Conversations to subscribe to."),
    ],
) -> None:
    """Subscribe to conversations (again after every reconnect) and print their events."""
    _listen(g, tuple(conversation_ids), flags, output, handing)


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: prismer-rt listen --type message.new | jq -r '.payload.content'")(
        listen
    )
    app.command(epilog="Example: prismer-rt subscribe conv_123 --count 5 | jq -r .payload.content")(
        subscribe
    )
