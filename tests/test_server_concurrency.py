"""The stand-in server's ``concurrent-handling`` fault: pipelined ``message.send`` frames to one
conversation can be stored out of order, as on the real server (its ``ws/handler.ts`` handles
each socket message without awaiting the previous one). Raw frames over websocket-client."""

from __future__ import annotations

import json
import uuid

import websocket

from tests.support.serverfixture import ServerFactory, ServerProcess, server_factory

__all__ = ["server_factory"]  # the fixture, imported so pytest finds it here

TIMEOUT = 5.0
FRAMES = 50
TRIES = 5


def pipelined(server: ServerProcess) -> tuple[list[str], list[str], list[str]]:
    """Write FRAMES message.send frames back to back to a new conversation: the contents in
    the order sent, in the order stored, and in the order their message.new came back."""
    token = "tok-" + uuid.uuid4().hex[:12]
    conversation = "conv-" + uuid.uuid4().hex[:12]
    ws = websocket.create_connection(f"{server.ws_url}/ws?token={token}", timeout=TIMEOUT)
    try:
        assert json.loads(ws.recv())["type"] == "authenticated"
        join = {"type": "conversation.join", "payload": {"conversationId": conversation}}
        ws.send(json.dumps(join))
        sent = [f"line-{n}" for n in range(FRAMES)]
        for content in sent:
            payload = {"conversationId": conversation, "content": content}
            ws.send(json.dumps({"type": "message.send", "payload": payload}))
        echoed: list[str] = []
        while len(echoed) < FRAMES:
            frame = json.loads(ws.recv())
            if frame["type"] == "message.new":
                echoed.append(frame["payload"]["content"])
    finally:
        ws.close()
    stored = [m["content"] for m in server.messages(conversation)]
    return sent, stored, echoed


def test_concurrent_handling_can_store_pipelined_sends_out_of_order(
    server_factory: ServerFactory,
) -> None:
    """With the fault, some try of 50 pipelined sends is stored (and broadcast) out of order;
    nothing is lost or doubled."""
    server = server_factory(dialect="server", faults=["concurrent-handling"])
    reordered = False
    for _ in range(TRIES):
        sent, stored, echoed = pipelined(server)
        assert sorted(stored) == sorted(sent)
        assert echoed == stored  # each message is broadcast when it is stored
        if stored != sent:
            reordered = True
            break
    assert reordered, f"{TRIES} tries of {FRAMES} pipelined sends all kept their order"


def test_without_the_fault_pipelined_sends_keep_their_order(
    server_factory: ServerFactory,
) -> None:
    """The default: frames are handled one after the other, in the order they came."""
    server = server_factory(dialect="server")
    sent, stored, echoed = pipelined(server)
    assert stored == sent and echoed == sent
