"""The REST channel: commands as HTTP requests, one at a time, each retried by the REST client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prismer_cli.errors import AuthError, CommandRejected, ConnectError, ExitStatus
from prismer_cli.log import Log
from prismer_cli.protocol.commands import MARK_READ, SEND, Command
from prismer_cli.protocol.endpoints import message_of
from prismer_cli.send.channel import Channel, SendOptions, Stopped
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.transport import Endpoint

if TYPE_CHECKING:  # imported where used: requests costs ~60 ms and most sends never need it
    from prismer_cli.transport.rest import RestClient


def rest_client(endpoint: Endpoint, log: Log, options: SendOptions) -> RestClient:
    from prismer_cli.transport.rest import RestClient

    return RestClient(endpoint, log, options.policy)


def rest_call(rest: RestClient, ledger: Ledger, entry: Entry) -> None:
    """Run one command over REST and settle its result (AuthError and ConnectError propagate)."""
    command = entry.command
    try:
        if command.action == SEND:
            assert command.content is not None
            answer = rest.send_message(
                command.conversation_id,
                command.content,
                command.message_type,
                command.extra,
                command.key,
            )
            ledger.settle(entry, True, message=message_of(answer))
        elif command.action == MARK_READ:
            rest.mark_read(command.conversation_id)
            ledger.settle(entry, True)
        else:
            ledger.settle(entry, False, ExitStatus.REJECTED, error="subscribe needs a WebSocket")
    except CommandRejected as exc:
        ledger.settle(entry, False, ExitStatus.REJECTED, error=str(exc))
    except (ConnectError, AuthError) as exc:
        ledger.settle(entry, False, exc.status, error=str(exc))
        raise


class RestChannel(Channel):
    def __init__(self, endpoint: Endpoint, ledger: Ledger, log: Log, options: SendOptions) -> None:
        self._rest = rest_client(endpoint, log, options)
        self._ledger = ledger

    def submit(self, commands: list[Command], again: list[Entry] | None = None) -> None:
        self._rest.not_after = self.deadline
        todo: list[Entry | Command] = [*(again or ()), *commands]
        for index, item in enumerate(todo):
            entry = item if isinstance(item, Entry) else self._ledger.add(item, "")
            try:
                rest_call(self._rest, self._ledger, entry)
            except (ConnectError, AuthError) as exc:
                self._ledger.emit()
                rest = [c if isinstance(c, Command) else c.command for c in todo[index + 1 :]]
                raise Stopped(exc, rest, resendable=False) from None
            self._ledger.emit()
            self._confirmed += 1

    def finish(self, *, abandon: bool = False) -> None:
        self._rest.close()
