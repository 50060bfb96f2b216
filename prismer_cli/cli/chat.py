"""`chat CONVERSATION_ID`: the chat engine (prismer_cli/chat/) behind its options."""

from __future__ import annotations

from typing import Annotated

import typer

from prismer_cli import signals
from prismer_cli.cli.options import CONNECTION, EVENT_OUTPUT
from prismer_cli.cli.run import execute
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus
from prismer_cli.log import Log
from prismer_cli.view import ViewFlags


@CONNECTION
@EVENT_OUTPUT
def chat(
    ctx: typer.Context,
    g: CommandLine,
    output: ViewFlags,
    conversation_id: Annotated[
        str, typer.Argument(metavar="CONVERSATION_ID", help="The conversation to chat in.")
    ],
    history: Annotated[
        int,
        typer.Option(
            "--history",
            min=0,
            metavar="N",
            help="First show the conversation's last N messages (0: none; skipped where the "
            "server keeps none).",
        ),
    ] = 10,
) -> None:
    """Chat in a conversation: its events as they come, each line typed sent as a message.

    At a terminal: the last messages, then every event in the pretty view above an input
    line; /read marks the conversation read, /help lists the commands, /quit or Ctrl-D end
    it. With stdin not a terminal, a two-way pipe on one connection: each stdin line is sent
    as a message and events come out as NDJSON (or as --pretty/--format say).
    """
    from prismer_cli.cli.send import check_id

    check_id(conversation_id, "CONVERSATION_ID")

    def job(log: Log) -> ExitStatus:
        from prismer_cli.chat import ChatOptions, at_terminal, pipe, terminal
        from prismer_cli.cli.endpoint import keeper_for
        from prismer_cli.output import close_on_hangup
        from prismer_cli.retry import Policy
        from prismer_cli.view import View
        from prismer_cli.view.choice import choose_for, event_output, result_output
        from prismer_cli.view.names import RestNames, UserNames

        interactive = at_terminal()
        keeper, tuning = keeper_for(g, log, stdin_free=False)
        view = choose_for(output, g)
        if interactive and not (output.json or output.format is not None):
            view = View("pretty", color=_auto_color(output))  # a person reads it
        endpoint = keeper.fresh()
        names = UserNames(RestNames(endpoint, log))
        options = ChatOptions(conversation_id, history, policy=Policy(tuning.backoff))
        # Ctrl-C, SIGTERM, SIGHUP as flags, as in listen: a KeyboardInterrupt raised from a
        # handler was lost when it landed in an import's clean-up, or held the editor's lock
        signals.listening(reload=keeper.request_reload)
        try:
            if interactive:
                return terminal(
                    endpoint,
                    options,
                    lambda stream: event_output(view, names, stream),
                    lambda stream: result_output(view, stream),
                    log,
                    connect=keeper.connect,
                )
            close_on_hangup()
            out = event_output(view, names)
            return pipe(
                endpoint, options, out, log, connect=keeper.connect, lifecycle=view.mode == "pretty"
            )
        finally:
            keeper.close()

    execute(job, g)


def _auto_color(output: ViewFlags) -> bool:
    import os
    import sys

    from prismer_cli.view.color import wanted

    return wanted(output.color, sys.stdout, os.environ)


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: prismer-rt chat conv_123 --history 20")(chat)
