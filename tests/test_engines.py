"""Fast tests of the engines with a fake connection: listen's filters, de-duplication, acks and
--count, and the send ledger's order. No socket, no server, no subprocess."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from prismer_cli.errors import ExitStatus
from prismer_cli.listen import Filters, Listener, ListenOptions
from prismer_cli.log import Log
from prismer_cli.output import RECORDS_PER_WRITE, Output
from prismer_cli.protocol.commands import MARK_READ, SEND, Command
from prismer_cli.protocol.dialects import DOCS, SERVER, Dialect
from prismer_cli.retry import Policy
from prismer_cli.send.awaiting import Awaiting
from prismer_cli.send.ledger import Ledger
from prismer_cli.send.reader import Reader
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Backoff
from tests.support.fakes import FakeConnection, FakeConnector, RecordingStream

ENDPOINT = Endpoint(url="http://127.0.0.1:9", token="t0ken-for-tests")


def event(kind: str, conversation: str = "c1", **payload: Any) -> dict[str, Any]:
    return {"type": kind, "payload": {"conversationId": conversation, **payload}}


def run_listen(
    *connections: FakeConnection, events: list[Any] | None = None, **options: Any
) -> tuple[ExitStatus, RecordingStream, FakeConnector]:
    stream = RecordingStream(events if events is not None else [])
    connector = FakeConnector(*connections)
    options.setdefault("policy", Policy(Backoff(0.001, 0.001), max_retries=0))
    listener = Listener(
        ENDPOINT,
        ListenOptions(**options),
        Output(stream),
        Log(stream=io.StringIO()),
        connect=connector,
    )
    return listener.run(), stream, connector


def test_listen_filters_on_type_and_conversation() -> None:
    """Only events of a kept type and a kept conversation are printed, unchanged."""
    conn = FakeConnection(
        [
            event("message.new", "c1", id="m1"),
            event("typing", "c1"),
            event("message.new", "c2", id="m2"),
            event("message.new", "c1", id="m3"),
        ]
    )
    filters = Filters(frozenset({"message.new"}), frozenset({"c1"}))
    status, out, _ = run_listen(conn, filters=filters)
    assert status == ExitStatus.OK
    assert [line["payload"]["id"] for line in out.lines()] == ["m1", "m3"]


def test_listen_drops_own_events_with_ignore_self() -> None:
    """--ignore-self drops the events whose sender is the user the server named."""
    conn = FakeConnection(
        [event("message.new", id="m1", senderId="me"), event("message.new", id="m2", senderId="u")],
        user_id="me",
    )
    _, out, _ = run_listen(conn, filters=Filters(ignore_self=True))
    assert [line["payload"]["id"] for line in out.lines()] == ["m2"]


def test_listen_prints_a_message_delivered_twice_once() -> None:
    """The same message id, again on the next connection, is not printed again."""
    first = FakeConnection([event("message.new", id="m1")], lost="dropped")
    second = FakeConnection([event("message.new", id="m1"), event("message.new", id="m2")])
    status, out, connector = run_listen(
        first, second, policy=Policy(Backoff(0.001, 0.001), max_retries=1)
    )
    assert status == ExitStatus.OK and connector.opened == 2
    assert [line["payload"]["id"] for line in out.lines()] == ["m1", "m2"]


def test_listen_acks_only_after_the_output_is_flushed() -> None:
    """Acks go out once the events they acknowledge have been flushed to stdout."""
    events: list[Any] = []
    frames = [{**event("message.new", id=f"m{i}"), "ackId": f"a{i}"} for i in (1, 2)]
    conn = FakeConnection(frames, dialect=SERVER, events=events)
    run_listen(conn, events=events)
    assert conn.acked == ["a1", "a2"]
    first_ack = events.index(("acks", ["a1", "a2"]))
    assert ("flush", 2) in events[:first_ack]


def test_listen_stops_at_count_and_subscribes_first() -> None:
    """--count N: exit 0 after N printed events, the connection closed; subscriptions go first."""
    conn = FakeConnection([event("message.new", id=f"m{i}") for i in range(5)])
    status, out, _ = run_listen(conn, count=2, subscribe=("c1",))
    assert status == ExitStatus.OK and conn.closed
    assert len(out.lines()) == 2
    assert conn.sent == [{"action": "subscribe", "conversationId": "c1"}]


def test_listen_times_out_short_of_count() -> None:
    """The stream ends (the deadline) before --count: exit 124."""
    status, out, _ = run_listen(FakeConnection([event("message.new", id="m1")]), count=3)
    assert status == ExitStatus.TIMEOUT and len(out.lines()) == 1


def test_ledger_prints_results_in_command_order() -> None:
    """A later command settled first waits for the earlier one; the gravest status wins."""
    stream = io.BytesIO()
    ledger = Ledger(Output(stream))
    first = ledger.add(Command(SEND, "c1", "hi", line=1), "r1")
    second = ledger.add(Command(MARK_READ, "c2", line=2), "r2")
    ledger.settle(second, False, ExitStatus.REJECTED, error="no")
    ledger.emit()
    assert stream.getvalue() == b""
    ledger.settle(first, True)
    ledger.emit()
    lines = stream.getvalue().splitlines()
    assert [line.count(b'"line":') for line in lines] == [1, 1]
    assert b'"line":1' in lines[0] and b'"line":2' in lines[1]
    assert ledger.status == ExitStatus.REJECTED


def test_ledger_writes_a_burst_of_results_as_record_writes_each() -> None:
    """emit() writes the due results in one write (Output.records): the bytes record() would
    write, line by line; a confirmed echo's result (confirm) is settle()'s, field for field."""
    stream, expected = io.BytesIO(), io.BytesIO()
    ledger = Ledger(Output(stream))
    message = {"id": "m1", "content": "h\u00e9", "metadata": {"_idempotencyKey": "k"}}
    commands = [
        Command(SEND, "c1", "hi", line=1, key="k1"),
        Command(SEND, "c2", "yo", key="k2"),
        Command(MARK_READ, "c3", line=3),
    ]
    entries = [ledger.add(command, f"r{n}") for n, command in enumerate(commands)]
    for entry in entries:
        ledger.confirm(entry, message)
    ledger.emit()
    output = Output(expected)
    for entry in entries:
        settled = Ledger(Output(io.BytesIO())).add(entry.command, entry.request_id)
        Ledger(Output(io.BytesIO())).settle(
            settled, True, requestId=entry.request_id, message=message
        )
        assert entry.record == settled.record and list(entry.record or ()) == list(
            settled.record or ()
        )
        output.record(settled.record)
    output.flush()
    assert stream.getvalue() == expected.getvalue() and stream.getvalue().count(b"\n") == 3


class CountsWrites(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []  # the lines of each write

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data).count(b"\n"))
        return super().write(data)


def test_a_great_many_results_due_at_once_are_written_a_bounded_number_at_a_time() -> None:
    """100,000 results due at once (the docs dialect's close confirms every frame) once cost
    400 MiB serialised in one join: records() writes RECORDS_PER_WRITE lines at a time, every
    line once, in order."""
    stream = CountsWrites()
    records = [{"ok": True, "line": n} for n in range(2 * RECORDS_PER_WRITE + 5)]
    Output(stream).records(records)
    assert stream.writes == [RECORDS_PER_WRITE, RECORDS_PER_WRITE, 5]
    assert stream.getvalue() == b"".join(orjson.dumps(r) + b"\n" for r in records)


class ShowsErrors(Output):
    """An Output that, as a human view does, shows an error frame as a line of its own."""

    def server_error(self, frame: dict[str, Any]) -> bool:
        self.line(b'{"shown":"error"}')
        return True


def test_listen_batch_keeps_the_order_of_lines_and_shown_errors() -> None:
    """Frames that come together (one batch): an error frame shown on stdout comes after the
    events before it, a frame on several lines is printed on one, the others as they came."""
    frames = [
        orjson.dumps(event("message.new", id="m1")),
        b'{"type": "message.new",\n "payload": {"id": "m2"}}',
        b'{"type":"error"}',
        b'{"type":"message.new","payload":{"id":"m3"}}',
    ]
    stream = RecordingStream([])
    listener = Listener(
        ENDPOINT,
        ListenOptions(policy=Policy(Backoff(0.001, 0.001), max_retries=0)),
        ShowsErrors(stream),
        Log(stream=io.StringIO()),
        connect=FakeConnector(FakeConnection(frames)),
    )
    assert listener.run() == ExitStatus.OK
    assert stream.getvalue().splitlines() == [
        frames[0],
        b'{"type":"message.new","payload":{"id":"m2"}}',
        b'{"shown":"error"}',
        frames[3],
    ]


@pytest.mark.parametrize("count", [4, 5])
def test_count_is_exact_across_an_error_frame_in_a_batch(count: int) -> None:
    """An error frame in the middle of a batch (its lines before it written first) does not
    change what --count counts: exactly N events, the first N, none lost after the error."""
    frames = [event("message.new", id=f"m{i}") for i in range(1, 8)]
    conn = FakeConnection([*frames[:2], {"type": "error"}, *frames[2:]])
    status, out, _ = run_listen(conn, count=count)
    assert status == ExitStatus.OK
    assert [line["payload"]["id"] for line in out.lines()] == [f"m{i}" for i in range(1, count + 1)]


def test_listen_reads_no_frame_after_count() -> None:
    """--count reached in the middle of a batch: the frames after it are not acknowledged."""
    frames = [{**event("message.new", id=f"m{i}"), "ackId": f"a{i}"} for i in range(1, 5)]
    conn = FakeConnection([*frames[:1], frames[0], *frames[1:]], dialect=SERVER)
    status, out, _ = run_listen(conn, count=2)
    assert status == ExitStatus.OK
    assert [line["payload"]["id"] for line in out.lines()] == ["m1", "m2"]
    assert conn.acked == ["a1", "a1", "a2"]


@pytest.mark.parametrize("dialect", [DOCS, SERVER], ids=["docs", "server"])
def test_the_reader_takes_each_echo_as_its_dialect_does(dialect: Dialect) -> None:
    """send's reader thread takes the echoes out of a burst of frames itself (its hot path):
    exactly what the dialect's own_echo takes, with the same key, in order, whatever the frame
    holds (a key or none, metadata of any shape, another sender, no payload object)."""

    def new(sender: Any = "me", **fields: Any) -> dict[str, Any]:
        return {"type": "message.new", "payload": {"senderId": sender, **fields}}

    base = {"conversationId": "c1", "content": "hi", "type": "text"}
    frames = [
        new(**base, metadata={"_idempotencyKey": "k1"}),
        new(**base, metadata={"_idempotencyKey": 7}),
        new(**base, metadata=["_idempotencyKey"]),
        {**new(**base, metadata={"_idempotencyKey": "k2", "x": 1}), "ackId": "a1"},
        event("typing"),  # not an echo: the echoes before it are settled first
        new(conversationId="c2", content="yo"),
        new(sender="someone else", **base, metadata={"_idempotencyKey": "k3"}),
        new(sender=None, **base),
        {"type": "message.new", "payload": ["not", "an", "object"]},
        {"type": "message.new"},
        new(**{**base, "type": "markdown"}, metadata={"_idempotencyKey": "k4"}),
    ]
    ledger = Ledger(Output(io.BytesIO()))
    awaiting = Awaiting(dialect, ledger, 10.0, False)
    conn = FakeConnection([], dialect=dialect, user_id="me")
    reader = Reader(conn, awaiting, ledger, Log(stream=io.StringIO()), lambda *_: None)
    reader.finish()
    reader.join(5.0)
    taken: list[Any] = []
    awaiting.on_echoes = taken.extend  # type: ignore[method-assign,assignment]
    reader.handle_many([orjson.dumps(frame) for frame in frames])
    expected = [dialect.own_echo(frame, "me") for frame in frames]
    assert taken == [echo for echo in expected if echo is not None]
    assert len(taken) == 6 and conn.acked == [] and conn._queued == ["a1"]


def test_echoes_of_one_key_settle_its_messages_in_the_order_written() -> None:
    """Two messages awaiting one echo key (a key given twice, two conversations) are settled
    first written first, one per echo; the next of a conversation gets its turn; one taken
    back (forget) leaves the other awaited; an echo nothing awaits changes nothing."""
    ledger = Ledger(Output(io.BytesIO()))
    awaiting = Awaiting(SERVER, ledger, 10.0, False)
    a1, b1, a2, c1 = (
        ledger.add(Command(SEND, conv, text, key=key), f"r{n}")
        for n, (conv, text, key) in enumerate(
            [("a", "1", "k"), ("b", "1", "k"), ("a", "2", "k2"), ("c", "1", "k")]
        )
    )
    with awaiting.lock:
        assert [awaiting.take_turn(e, 0.0) for e in (a1, b1, a2, c1)] == [True, True, False, True]
    awaiting.on_echoes([("k", {"id": "m1"}), ("nothing", {"id": "m0"})])
    assert a1.record is not None and a1.record["message"] == {"id": "m1"}
    assert b1.record is None and awaiting.ready == [a2]
    with awaiting.lock:
        awaiting.forget(b1)
    awaiting.on_echoes([("k", {"id": "m3"}), ("k2", {"id": "m2"})])
    assert c1.record is not None and c1.record["message"] == {"id": "m3"}
    assert a2.record is not None and b1.record is None
    assert awaiting.answered() and awaiting.confirmed == 3
