"""Nothing lost, nothing doubled, never a false "ok" (issue 10), through the real command.

Each test counts on the server's side (what it stored, which connections it saw) and compares
the printed lines with what was emitted or sent.
"""

from __future__ import annotations

import pytest

from tests.support.cli import (
    Background,
    env_for,
    frames_in,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.serverfixture import ServerFactory

TOKEN = "delivery-token"
ME = user_id(TOKEN)


def acks(log: list[dict]) -> int:
    return sum(1 for f in frames_in(log) if f.get("type") == "ack")


# ── listen: de-duplication ───────────────────────────────────────────────


def test_listen_prints_every_event_across_a_server_restart(server_factory: ServerFactory) -> None:
    """ackIds start again from ack_1 in a new server process: not a re-delivery."""
    server = server_factory(dialect="server")
    proc = Background("listen", "--count", "8", "--timeout", "20", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    for n in (1, 2, 3):
        server.emit("task.updated", {"taskId": "t1", "n": n}, to=ME)
    wait_until(lambda: acks(server.log()) >= 3)
    server.restart()
    wait_for_connections(server, 1)
    for n in range(4, 9):
        server.emit("task.updated", {"taskId": "t1", "n": n}, to=ME)
    result = proc.wait()
    assert result.code == 0, result.err
    assert [e["payload"]["n"] for e in result.lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [e["ackId"] for e in result.lines][3] == "ack_1"  # the new process's first


@pytest.mark.parametrize(
    ("dialect", "edit"), [("docs", "message.edited"), ("server", "message.edit")]
)
def test_repeated_events_about_one_message_all_print(
    server_factory: ServerFactory, dialect: str, edit: str
) -> None:
    """Three edits and three status changes of one message are six new events; a second
    message.new of the same message id (a re-broadcast) is not."""
    server = server_factory(dialect=dialect)
    proc = Background("listen", "--count", "7", "--timeout", "10", env=env_for(server.url, TOKEN))
    wait_for_connections(server, 1)
    base = {"id": "m1", "conversationId": "c1"}
    sent = [("message.new", {**base, "content": "v0"})]
    sent += [(edit, {**base, "content": f"v{n}"}) for n in (1, 2, 3)]
    sent += [("message.status", {**base, "status": s}) for s in ("sent", "delivered", "read")]
    for kind, payload in sent[:1] + sent[:1] + sent[1:]:  # message.new twice
        server.emit(kind, payload, to=ME)
    result = proc.wait()
    assert result.code == 0, result.err
    assert [(e["type"], e["payload"]) for e in result.lines] == sent
