"""listen and subscribe through the real command against the local server, both dialects,
both transports, dialect left on auto."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.cli import (
    Background,
    accepted_connections,
    command,
    env_for,
    frames_in,
    run,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.serverfixture import ServerProcess, running_server

OTHER = "bob-token"


@pytest.fixture(scope="module", params=["docs", "server"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server in open mode (any token is a user of its own), one per dialect and module."""
    home = tmp_path_factory.mktemp(f"serve-{request.param}")
    with running_server(home, dialect=request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict_server(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server of the same dialect that accepts only alice's token."""
    home = tmp_path_factory.mktemp(f"strict-{server.dialect}")
    with running_server(home, dialect=server.dialect, tokens=["alice-token=Alice"]) as srv:
        yield srv


@pytest.fixture(autouse=True)
def token(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test is its own user, so no test sees another's re-sent frames."""
    global TOKEN
    TOKEN = "tok-" + re.sub(r"\W", "-", request.node.name)
    yield TOKEN


TOKEN = ""


def joins_and_says(conversation: str, content: str) -> str:
    """stdin for `send`: join the conversation (the server dialect needs it), then say something."""
    return (
        f'{{"action":"subscribe","conversationId":"{conversation}"}}\n'
        f'{{"conversationId":"{conversation}","content":"{content}"}}\n'
    )


def listen(server: ServerProcess, *args: str, token: str | None = None, **env: str) -> Background:
    """Start a listener and wait until the server has authenticated it."""
    before = len(accepted_connections(server.log()))
    proc = Background(*args, env=env_for(server.url, token or TOKEN, **env))
    wait_for_connections(server, before + 1)
    return proc


def emit_messages(
    server: ServerProcess, conversation: str, contents: list[str], to: str | None = None
) -> None:
    for i, content in enumerate(contents):
        server.emit(
            "message.new",
            {
                "id": f"m-{conversation}-{i}",
                "conversationId": conversation,
                "content": content,
                "senderId": user_id(OTHER),
            },
            to=to,
        )


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_events_are_ndjson_envelopes_as_sent(server: ServerProcess, transport: str) -> None:
    """Each event is one JSON line: the server's envelope with type and payload, nothing else."""
    proc = listen(server, "listen", "--count", "3", "--transport", transport)
    emit_messages(server, "c-nd-" + transport, ["one", "two", "three"], to=user_id(TOKEN))
    result = proc.wait()
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 3
    events = [orjson.loads(line) for line in lines]
    assert [e["payload"]["content"] for e in events] == ["one", "two", "three"]
    assert all(e["type"] == "message.new" and set(e) >= {"type", "payload"} for e in events)
    if server.dialect == "server":  # every field of the envelope is kept
        assert all("timestamp" in e and "ackId" in e for e in events)
    assert result.err == ""


def test_output_is_identical_over_both_transports(server: ServerProcess) -> None:
    """The same events give the same lines over WebSocket and SSE (a jq filter works on both)."""
    ws = listen(server, "listen", "--count", "2", "--transport", "ws")
    sse = listen(server, "listen", "--count", "2", "--transport", "sse")
    server.emit("task.updated", {"taskId": "t1", "status": "done"}, to=user_id(TOKEN))
    server.emit("presence.update", {"name": "Bob", "status": "online"}, to=user_id(TOKEN))
    a, b = ws.wait(), sse.wait()
    strip = lambda out: [  # noqa: E731 - ackIds differ per connection by design
        {k: v for k, v in orjson.loads(line).items() if k != "ackId"} for line in out.splitlines()
    ]
    assert a.code == b.code == 0
    assert strip(a.out) == strip(b.out)
    assert [e["type"] for e in strip(a.out)] == ["task.updated", "presence.update"]


def test_type_and_conversation_filters(server: ServerProcess) -> None:
    """--type and --conversation: OR within an option, AND across options."""
    proc = listen(
        server,
        "listen",
        "--type",
        "message.new",
        "--type",
        "task.updated",
        "--conversation",
        "c-keep",
        "--conversation",
        "c-also",
        "--count",
        "2",
    )
    me = user_id(TOKEN)
    server.emit("message.new", {"id": "f1", "conversationId": "c-drop", "content": "x"}, to=me)
    server.emit("message.edited", {"id": "f2", "conversationId": "c-keep", "content": "x"}, to=me)
    server.emit("message.new", {"id": "f3", "conversationId": "c-keep", "content": "kept"}, to=me)
    server.emit("task.updated", {"taskId": "t", "conversationId": "c-also"}, to=me)
    result = proc.wait()
    assert result.code == 0
    assert [(e["type"], e["payload"].get("id")) for e in result.lines] == [
        ("message.new", "f3"),
        ("task.updated", None),
    ]


def test_conversation_filter_keeps_the_conversations_own_events(server: ServerProcess) -> None:
    """--conversation C keeps an event about C itself: a conversation event whose payload.id is
    C (its creation), or one whose top-level conversationId is C; not another conversation's."""
    proc = listen(server, "listen", "--conversation", "c-own", "--count", "3", "--timeout", "5")
    me = user_id(TOKEN)
    server.emit("conversation.created", {"id": "c-other", "type": "group"}, to=me)
    server.emit("conversation.created", {"id": "c-own", "type": "group"}, to=me)
    server.emit("task.updated", {"taskId": "t", "id": "c-own"}, to=me)  # not a conversation event
    server.emit("message.new", {"id": "o1", "conversationId": "c-own", "content": "x"}, to=me)
    server.emit("conversation.update", {"id": "c-own", "title": "renamed"}, to=me)
    result = proc.wait()
    assert result.code == 0, result.err
    assert [(e["type"], e["payload"]["id"]) for e in result.lines] == [
        ("conversation.created", "c-own"),
        ("message.new", "o1"),
        ("conversation.update", "c-own"),
    ]


def test_timeout_without_count_exits_0(server: ServerProcess) -> None:
    """--timeout alone is a normal end: exit 0."""
    start = time.monotonic()
    result = run("listen", "--timeout", "0.5", env=env_for(server.url, TOKEN))
    assert result.code == 0, result.err
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_timeout_before_count_exits_124(server: ServerProcess, transport: str) -> None:
    """--timeout before --count is reached: exit 124, with what did arrive printed."""
    proc = listen(server, "listen", "--count", "5", "--timeout", "1.5", "--transport", transport)
    emit_messages(server, "c-124-" + transport, ["only one"], to=user_id(TOKEN))
    result = proc.wait()
    assert result.code == 124
    assert [e["payload"]["content"] for e in result.lines] == ["only one"]


def test_subscribe_sends_subscriptions_and_keeps_only_those(server: ServerProcess) -> None:
    """subscribe C... joins each conversation after authentication and filters to them."""
    proc = listen(server, "subscribe", "c-sub-a", "c-sub-b", "--count", "2")
    log = server.log()
    conn = accepted_connections(log)[-1]["conn"]
    wait_until(lambda: len(frames_in(server.log(), conn)) >= 2)
    frames = frames_in(server.log(), conn)
    if server.dialect == "docs":
        assert frames[:2] == [
            {"action": "subscribe", "conversationId": "c-sub-a"},
            {"action": "subscribe", "conversationId": "c-sub-b"},
        ]
    else:
        assert [(f["type"], f["payload"]) for f in frames[:2]] == [
            ("conversation.join", {"conversationId": "c-sub-a"}),
            ("conversation.join", {"conversationId": "c-sub-b"}),
        ]
    me = user_id(TOKEN)
    server.emit("message.new", {"id": "s1", "conversationId": "c-other", "content": "no"}, to=me)
    server.emit("message.new", {"id": "s2", "conversationId": "c-sub-b", "content": "b"}, to=me)
    server.emit("message.new", {"id": "s3", "conversationId": "c-sub-a", "content": "a"}, to=me)
    result = proc.wait()
    assert result.code == 0
    assert [e["payload"]["content"] for e in result.lines] == ["b", "a"]


def test_messages_sent_by_others_arrive(server: ServerProcess) -> None:
    """A message sent by another user with `prismer-rt send` reaches a subscriber."""
    proc = listen(server, "subscribe", "c-real", "--count", "1")
    time.sleep(0.3)  # let the subscription reach the server
    sent = run(
        "send", env=env_for(server.url, OTHER), input=joins_and_says("c-real", "hello alice")
    )
    assert sent.code == 0, sent.err
    result = proc.wait()
    assert result.code == 0
    assert result.lines[0]["payload"]["content"] == "hello alice"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_ignore_self_drops_own_messages(server: ServerProcess, transport: str) -> None:
    """--ignore-self leaves out events whose senderId is the authenticated user."""
    proc = listen(
        server, "subscribe", "c-self", "--ignore-self", "--count", "1", "--transport", transport
    )
    time.sleep(0.3)
    me = joins_and_says("c-self", "from me")
    assert run("send", env=env_for(server.url, TOKEN), input=me).code == 0
    bob = joins_and_says("c-self", "from bob")
    assert run("send", env=env_for(server.url, OTHER), input=bob).code == 0
    result = proc.wait()
    assert [e["payload"]["content"] for e in result.lines] == ["from bob"]


def test_duplicate_message_ids_print_once(server: ServerProcess) -> None:
    """A message event delivered twice (same payload.id) is printed once."""
    proc = listen(server, "listen", "--count", "2", "--timeout", "5")
    me = user_id(TOKEN)
    for message_id in ("dup-1", "dup-1", "dup-1", "dup-2"):
        server.emit("message.new", {"id": message_id, "conversationId": "c-dup"}, to=me)
    result = proc.wait()
    assert result.code == 0
    assert [e["payload"]["id"] for e in result.lines] == ["dup-1", "dup-2"]


def test_meta_records_lifecycle(server: ServerProcess) -> None:
    """--meta adds a prismer-rt.connected record with the transport and detected dialect."""
    proc = listen(server, "listen", "--meta", "--count", "1")
    server.emit("task.updated", {"taskId": "t"}, to=user_id(TOKEN))
    result = proc.wait()
    kinds = [e["type"] for e in result.lines]
    assert kinds == ["prismer-rt.connected", "task.updated"]
    assert result.lines[0]["payload"]["dialect"] == server.dialect
    assert result.lines[0]["payload"]["transport"] == "ws"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_bad_token_exits_3_without_retry(strict_server: ServerProcess, transport: str) -> None:
    """A rejected token exits 3 at once (no 10 s auth timeout), after one attempt only."""
    server = strict_server
    before = len(server.log())
    start = time.monotonic()
    result = run("listen", "--transport", transport, env=env_for(server.url, "wrong-token"))
    assert result.code == 3, result.err
    assert time.monotonic() - start < 4
    assert "wrong-token" not in result.out + result.err
    attempts = [r for r in server.log()[before:] if r["kind"] in ("ws_connect", "sse_connect")]
    assert len(attempts) == 1


def test_garbage_frames_are_reported_and_skipped(server: ServerProcess, tmp_path: Path) -> None:
    """Frames that are not JSON objects go to stderr; the stream goes on."""
    server.set_faults(["garbage"])
    try:
        proc = listen(server, "listen", "--count", "1")
        server.emit("task.updated", {"taskId": "after-garbage"}, to=user_id(TOKEN))
        result = proc.wait()
    finally:
        server.set_faults([])
    assert result.code == 0
    assert result.lines[0]["payload"]["taskId"] == "after-garbage"
    assert result.err.count("not a JSON object") >= 3
    assert "Traceback" not in result.err


def test_broken_pipe_ends_quietly(server: ServerProcess) -> None:
    """`prismer-rt listen | head -1` ends without a traceback or error."""
    env = env_for(server.url, TOKEN)
    before = len(accepted_connections(server.log()))
    shell = subprocess.Popen(
        ["bash", "-c", " ".join(command("listen")) + " | head -1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_connections(server, before + 1)
    me = user_id(TOKEN)
    for i in range(200):
        server.emit("task.updated", {"taskId": f"t{i}", "pad": "x" * 2000}, to=me)
        if shell.poll() is not None:
            break
    out, err = shell.communicate(timeout=15)
    assert len(out.splitlines()) == 1
    assert err.decode() == ""


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_closes_with_1000(server: ServerProcess, signum: int, code: int) -> None:
    """Ctrl-C (and SIGTERM) close the socket with code 1000, then exit 130 (143)."""
    proc = listen(server, "listen")
    conn = accepted_connections(server.log())[-1]["conn"]
    proc.interrupt(signum)
    result = proc.wait()
    assert result.code == code
    assert "Traceback" not in result.err
    wait_until(lambda: any(r["kind"] == "ws_close" and r["conn"] == conn for r in server.log()))
    close = next(r for r in server.log() if r["kind"] == "ws_close" and r["conn"] == conn)
    assert close["code"] == 1000


def test_token_never_printed(server: ServerProcess, strict_server: ServerProcess) -> None:
    """Verbose logs, errors and output never show the token."""
    secret = "s3cr3t-token-value-that-must-not-leak"
    result = run("-v", "listen", "--no-reconnect", env=env_for(strict_server.url, secret))
    assert result.code == 3
    proc = listen(server, "-v", "listen", "--meta", "--count", "1")
    server.emit("task.updated", {"taskId": "t"}, to=user_id(TOKEN))
    ok = proc.wait()
    for text in (result.out, result.err, ok.out, ok.err):
        assert secret not in text and TOKEN not in text
