"""What the delivery loop asks of a channel (a socket or REST), and how a channel stops."""

from __future__ import annotations

from dataclasses import dataclass, field

from prismer_cli.errors import AuthError, ConnectError
from prismer_cli.protocol.commands import Command
from prismer_cli.retry import Deadline, Policy
from prismer_cli.send.ledger import Entry
from prismer_cli.tuning import MAX_MESSAGE_BYTES, SEND_RETRIES


@dataclass(frozen=True)
class SendOptions:
    wait: float = 10.0  # --wait: how long the server dialect may take to confirm a message
    policy: Policy = field(default_factory=lambda: Policy(max_retries=SEND_RETRIES))
    max_message_bytes: int = MAX_MESSAGE_BYTES  # a bigger frame is never written
    retry_file: str | None = None  # --retry-file: where the commands to run again go


class Stopped(Exception):
    """submit() could not go on: `error` says why, `unsent` are the commands without a result.

    `resendable`: the commands may be sent again on a new connection (the socket broke while
    they were written); REST errors are not, since the REST client has already retried them.
    """

    def __init__(
        self,
        error: ConnectError | AuthError,
        unsent: list[Command],
        *,
        resendable: bool,
        again: list[Entry] | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.unsent = unsent
        self.resendable = resendable
        self.again = again or []  # in the ledger already, without a result: to send again


class Channel:
    broken = False
    deadline = Deadline()  # the current batch's: its attempts end by then (set by the loop)
    cause = ""  # why it broke
    _confirmed = 0

    @property
    def confirmed(self) -> int:
        """Commands confirmed over this channel: progress, for the retries."""
        return self._confirmed

    @property
    def limit(self) -> int | None:
        """A message size the server refused (close 1009), less one."""
        return None

    def submit(self, commands: list[Command], again: list[Entry] | None = None) -> None:
        """Send `again` (entries of the ledger) then the commands, in order; raises Stopped
        when it cannot finish."""
        raise NotImplementedError

    def tend(self) -> None:
        """Settle what was confirmed meanwhile (called while stdin is quiet)."""

    def unconfirmed(self) -> list[Entry]:
        """Once broken: the entries to send again (same idempotency key) on a new channel."""
        return []

    def finish(self, *, abandon: bool = False) -> None:
        """Close; `abandon`: fail what awaits confirmation instead of waiting for it."""
        raise NotImplementedError
