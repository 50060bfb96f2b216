"""What the delivery loop asks of a channel (a socket or REST), and how a channel stops."""

from __future__ import annotations

from dataclasses import dataclass, field

from prismer_cli.errors import AuthError, ConnectError
from prismer_cli.protocol.commands import Command
from prismer_cli.retry import Deadline, Policy
from prismer_cli.tuning import SEND_RETRIES


@dataclass(frozen=True)
class SendOptions:
    wait: float = 10.0  # --wait: how long the server dialect may take to confirm a message
    policy: Policy = field(default_factory=lambda: Policy(max_retries=SEND_RETRIES))


class Stopped(Exception):
    """submit() could not go on: `error` says why, `unsent` are the commands without a result.

    `resendable`: the commands may be sent again on a new connection (the socket broke while
    they were written); REST errors are not, since the REST client has already retried them.
    """

    def __init__(
        self, error: ConnectError | AuthError, unsent: list[Command], *, resendable: bool
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.unsent = unsent
        self.resendable = resendable


class Channel:
    broken = False
    deadline = Deadline()  # the current batch's: its attempts end by then (set by the loop)

    def submit(self, commands: list[Command]) -> None:
        """Send the commands in order; raises Stopped when it cannot finish."""
        raise NotImplementedError

    def finish(self, *, abandon: bool = False) -> None:
        """Close; `abandon`: fail what awaits confirmation instead of waiting for it."""
        raise NotImplementedError
