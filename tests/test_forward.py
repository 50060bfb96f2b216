"""listen --forward-to (issue 20), judged by Prismer's own SDK: a handler on 127.0.0.1 built on
`prismer.webhook.PrismerWebhook` verifies the signature and parses every delivery."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cli import (
    Background,
    Result,
    env_for,
    run,
    user_id,
    wait_for_connections,
    wait_until,
)
from tests.support.sdkhandler import SdkHandler, free_port, verify_webhook_signature
from tests.support.serverfixture import ServerFactory, ServerProcess

DIALECTS = ["server", "docs"]
BOB = user_id("bob")
SECRET = "s3cret-for-tests"
# The server's waits between attempts (2 s, 5 s) and the backoff, made short.
QUICK = {
    "PRISMER_RT_HANDLER_RETRY_FIRST": "0.05",
    "PRISMER_RT_HANDLER_RETRY_SECOND": "0.1",
    "PRISMER_RT_FORWARD_TIMEOUT": "2",
    "PRISMER_WEBHOOK_SECRET": SECRET,
}


class Chat:
    """alice writes to bob (a direct conversation, created by the first message; `to`: bob's
    user id); bob writes back; each message's id is kept, in order."""

    def __init__(self, server: ServerProcess, to: str = BOB) -> None:
        self.url = server.url
        self.to = to
        self.conversation: str | None = None
        self.sent: list[str] = []  # message ids, oldest first

    def say(self, content: str, token: str = "alice", **fields: Any) -> str:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"content": content, **fields}
        if self.conversation is None:
            url = f"{self.url}/api/im/direct/{self.to}/messages"
        else:
            url = f"{self.url}/api/im/messages/{self.conversation}"
        answer = requests.post(url, json=body, headers=headers, timeout=5)
        assert answer.status_code == 201, answer.text
        data = answer.json()["data"]
        self.conversation = data["conversationId"]
        message_id: str = data["message"]["id"]
        self.sent.append(message_id)
        return message_id


def env(server: ServerProcess, **extra: str) -> dict[str, str]:
    return env_for(server.url, "bob", **{**QUICK, **extra})


def listening(server: ServerProcess, *args: str, **extra: str) -> Background:
    """A background listen, connected before it is returned."""
    before = len([r for r in server.log() if r["kind"] in ("ws_connect", "sse_connect")])
    live = Background("listen", *args, env=env(server, **extra))
    wait_for_connections(server, before + 1)
    return live


def lines(result: Result) -> list[dict[str, Any]]:
    """stdout's lines, split at newlines only (str.splitlines would split at U+2028 too)."""
    return [json.loads(line) for line in result.out.split("\n") if line.strip()]


def records(result: Result, kind: str) -> list[dict[str, Any]]:
    return [line["payload"] for line in lines(result) if line["type"] == f"prismer-rt.{kind}"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_sdk_handler_verifies_and_parses_every_message(
    server_factory: ServerFactory, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice=alice_a", "bob=Bob"])
    chat = Chat(server)
    with SdkHandler(SECRET) as handler:
        live = listening(server, "--forward-to", handler.url, "--meta", "--timeout", "4")
        first = chat.say("héllo\u2028 / wörld 😀", metadata={"k": 1.0, "f": 0.5, "s": "x"})
        chat.say("own message", token="bob")  # the listening user's own: not forwarded
        second = chat.say("second", parentId=first)
        result = live.wait()
    assert result.code == 0, result.err
    payloads = handler.accepted
    assert [p.message.id for p in payloads] == [first, second]
    assert len(handler.deliveries) == 2  # each once, all verified and parsed by the SDK
    one = payloads[0]
    assert one.source == "prismer_im" and one.event == "message.new"
    assert one.message.content == "héllo\u2028 / wörld 😀"
    assert one.message.sender_id == user_id("alice")
    assert one.message.conversation_id == chat.conversation
    assert one.sender.id == user_id("alice") and one.conversation.id == chat.conversation
    assert one.sender.display_name == "alice_a"  # looked up, or the event's senderName
    body = handler.deliveries[0].body
    assert "héllo\u2028 / wörld 😀".encode() in body  # UTF-8 as JSON.stringify writes it
    if dialect == "server":
        assert one.message.metadata == {"k": 1, "f": 0.5, "s": "x"}
        assert b'"metadata":{"k":1,"f":0.5,"s":"x"}' in body
        assert (one.sender.username, one.sender.role) == ("alice_a", "agent")
        assert one.conversation.type == "direct"
        assert payloads[1].message.parent_id == first
    else:  # no look-ups on this server: what the event carries
        assert one.message.metadata == {} and one.sender.username == ""
    headers = handler.deliveries[0].headers
    assert headers["user-agent"] == "Prismer-IM/0.3.0"
    assert headers["x-prismer-event"] == "message.new"
    assert headers["content-type"] == "application/json"
    assert headers["x-prismer-forwarded-by"].startswith("prismer-rt/")
    events = [line for line in lines(result) if line["type"] == "message.new"]
    assert [e["payload"]["id"] for e in events] == chat.sent  # stdout: the event stream
    forwarded = records(result, "forwarded")
    assert [(r["messageId"], r["status"], r["attempt"]) for r in forwarded] == [
        (first, 200, 1),
        (second, 200, 1),
    ]
    said = [line for line in result.err.splitlines() if f"POST {handler.url}" in line]
    assert len(said) == 2 and first in said[0] and "[200]" in said[0]
    assert SECRET not in result.err + result.out


def test_a_new_participant_is_looked_up_again(server_factory: ServerFactory) -> None:
    """The conversation is looked up once, and again when a sender is not among its cached
    participants (carol, who joined after alice's first message)."""
    server = server_factory(dialect="server", tokens=["alice=alice", "bob=bob", "carol=carol"])
    with SdkHandler(SECRET) as handler:
        live = Background(
            "subscribe", "room1", "--forward-to", handler.url, "--timeout", "10", env=env(server)
        )  # six sends below, each a process of its own: room for a loaded machine
        wait_for_connections(server, 1)
        for name, text in (("alice", "first"), ("alice", "second"), ("carol", "third")):
            joined = run("send", input='{"action":"subscribe","conversationId":"room1"}\n',
                         env=env_for(server.url, name))  # fmt: skip
            sent = run("send", "room1", text, env=env_for(server.url, name))
            assert joined.code == 0 and sent.code == 0, joined.err + sent.err
        result = live.wait()
    assert result.code == 0, result.err
    senders = [(p.sender.username, p.sender.role, p.conversation.type) for p in handler.accepted]
    assert senders == [("alice", "agent", "group"), ("alice", "agent", "group"),
                       ("carol", "agent", "group")]  # fmt: skip
    asked = [r["path"] for r in server.log() if r["kind"] == "rest" and r["method"] == "GET"]
    assert asked.count("/api/im/conversations/room1") == 2
    assert not [path for path in asked if path.startswith("/api/im/users/")]


def test_the_forwarded_request_is_the_webhook_serve_sends(server_factory: ServerFactory) -> None:
    """An agent registered with an endpoint gets serve's own webhook (services/webhook.service.ts
    as serve reproduces it) and, from its listen, the forwarded one: equal byte for byte but for
    the timestamp, both verified and parsed by the SDK."""
    server = server_factory(dialect="server", tokens=["alice=alice_a"])
    with SdkHandler(SECRET) as served, SdkHandler(SECRET) as forwarded:
        answer = requests.post(
            f"{server.url}/api/im/register",
            json={"type": "agent", "username": "hooked", "displayName": "Hooked Agent",
                  "endpoint": served.url, "webhookSecret": SECRET},
            timeout=5,
        )  # fmt: skip
        agent = answer.json()["data"]
        live = Background(
            "listen", "--forward-to", forwarded.url, "--timeout", "3",
            env=env_for(server.url, agent["token"], **QUICK),
        )  # fmt: skip
        wait_for_connections(server, 1)
        chat = Chat(server, agent["imUserId"])
        first = chat.say('héllo / wörld 😀 \\ "q"', metadata={"k": 1.0, "f": 0.5, "e": 1e-7})
        chat.say("a reply", parentId=first, type="markdown")
        result = live.wait()
        wait_until(lambda: len(served.accepted) == 2)
    assert result.code == 0, result.err
    assert len(forwarded.accepted) == 2 and len(served.deliveries) == 2
    # serve sends each webhook in a task of its own, so two may arrive in either order: pair
    # them by message id (the forwarded ones come in event order, which the order tests check).
    by_id = {json.loads(d.body)["message"]["id"]: d for d in served.deliveries}
    for by_us in forwarded.deliveries:
        by_serve = by_id[json.loads(by_us.body)["message"]["id"]]
        same_time = re.sub(rb'"timestamp":\d+', b'"timestamp":0', by_serve.body)
        assert re.sub(rb'"timestamp":\d+', b'"timestamp":0', by_us.body) == same_time
        for name in ("content-type", "x-prismer-event", "user-agent"):
            assert by_us.headers[name] == by_serve.headers[name]
    assert b'"metadata":{"k":1,"f":0.5,"e":1e-7}' in by_id[first].body
    webhooks = [r for r in server.log() if r["kind"] == "webhook"]
    assert sorted((r["messageId"], r["status"]) for r in webhooks) == sorted(
        (m, 200) for m in chat.sent
    )


def test_a_wrong_secret_is_refused_by_the_sdk_and_skipped(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    chat = Chat(server)
    with SdkHandler("another-secret") as handler:
        live = listening(server, "--forward-to", handler.url, "--meta", "--timeout", "3")
        chat.say("one")
        result = live.wait()
    assert result.code == 0, result.err  # without a cursor file: reported and skipped
    assert [d.status for d in handler.deliveries] == [401, 401, 401]
    assert handler.accepted == []
    failed = records(result, "forward-failed")
    assert [(r["messageId"], r["status"], r["attempt"]) for r in failed] == [(chat.sent[0], 401, 3)]
    assert "skipped" in result.err


def test_500s_are_retried_as_the_server_retries(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    chat = Chat(server)
    with SdkHandler(SECRET, statuses=[500, 503]) as handler:
        live = listening(server, "--forward-to", handler.url, "--meta", "--timeout", "3")
        chat.say("one")
        chat.say("two")
        result = live.wait()
    assert result.code == 0, result.err
    assert [d.status for d in handler.deliveries] == [500, 503, 200, 200]
    assert [p.message.id for p in handler.accepted] == chat.sent
    forwarded = records(result, "forwarded")
    assert [(r["messageId"], r["attempt"]) for r in forwarded] == [
        (chat.sent[0], 3),
        (chat.sent[1], 1),
    ]
    bodies = [d.body for d in handler.deliveries[:3]]
    assert bodies[0] == bodies[1] == bodies[2]  # a retry sends the same body again


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_down_handler_with_a_cursor_file_loses_nothing(
    server_factory: ServerFactory, tmp_path: Path, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    chat = Chat(server)
    cursor = str(tmp_path / "hook.cursor")
    port = free_port()  # nobody listens there yet
    down = f"http://127.0.0.1:{port}/hook"
    live = listening(server, "--forward-to", down, "--cursor-file", cursor, "--timeout", "2")
    for n in range(3):
        chat.say(f"m{n}")
    result = live.wait()
    assert result.code == 124, result.err
    assert "the next run hands it on first" in result.err
    assert "connection refused" in result.err
    chat.say("m3")  # between the runs
    with SdkHandler(SECRET, port=port) as handler:
        code = run(
            "listen", "--forward-to", down, "--cursor-file", cursor, "--no-follow", env=env(server)
        ).code
        again = run(
            "listen", "--forward-to", down, "--cursor-file", cursor, "--no-follow", env=env(server)
        )
    assert code == 0 and again.code == 0, again.err
    assert [p.message.id for p in handler.accepted] == chat.sent  # in order, each once


@pytest.mark.parametrize("dialect", DIALECTS)
def test_replies_are_sent_once(server_factory: ServerFactory, dialect: str) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    chat = Chat(server)
    chat.say("question one")
    chat.say("question two")
    assert chat.conversation is not None
    args = ("listen", "--since", "all", "--no-follow", "--forward-to")
    with SdkHandler(SECRET, reply="re: ") as handler:
        first = run(*args, handler.url, "--forward-replies", env=env(server))
        again = run(*args, handler.url, "--forward-replies", env=env(server))  # re-delivered
        shown = run(*args, handler.url, env=env(server))  # without the flag: only shown
    assert first.code == again.code == shown.code == 0, first.err + again.err
    stored = server.messages(chat.conversation)
    replies = [m for m in stored if m["senderId"] == BOB]
    assert sorted(r["content"] for r in replies) == ["re: question one", "re: question two"]
    assert len(handler.deliveries) == 6
    assert "re: question one" in shown.err  # the answer, on the delivery's stderr line


def test_usage_errors(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["bob"])
    bad = run("listen", "--forward-to", "ftp://127.0.0.1/hook", env=env(server))
    assert bad.code == 2 and "http:// or https://" in bad.err
    lonely = run("listen", "--forward-replies", env=env(server))
    assert lonely.code == 2 and "--forward-to" in lonely.err
    empty = run("listen", "--exec", " ", env=env(server))
    assert empty.code == 2


def test_the_secret_comes_from_the_config_or_the_default(
    server_factory: ServerFactory, isolated_home: Path
) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    chat = Chat(server)
    chat.say("one")
    config = isolated_home / ".config" / "prismer-rt" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('webhook_secret = "from-the-config"\n')
    config.chmod(0o644)
    base = {k: v for k, v in env(server).items() if k != "PRISMER_WEBHOOK_SECRET"}
    args = ("listen", "--since", "all", "--no-follow", "-v", "--trace", "--forward-to")
    with SdkHandler("from-the-config") as handler:
        refused = run(*args, handler.url, env=base)
        config.chmod(0o600)
        configured = run(*args, handler.url, env=base)
    assert refused.code == 2 and "chmod 600" in refused.err
    assert configured.code == 0 and len(handler.accepted) == 1, configured.err
    assert "from-the-config" not in configured.err + configured.out  # never, even traced
    assert "POST /hook {" in configured.err  # the traced request, its body but no secret
    config.unlink()
    with SdkHandler("dev-webhook-secret") as handler:
        default = run(*args, handler.url, env=base)
    assert default.code == 0 and len(handler.accepted) == 1
    assert default.err.count("default secret 'dev-webhook-secret'") == 1


def test_the_body_is_the_real_servers_byte_for_byte() -> None:
    """The request captured from a real server (docs/protocol.md "Webhooks"), rebuilt from the
    live event, the looked-up sender and conversation, and its timestamp."""
    from prismer_cli.handoff import webhook

    captured = (
        b'{"source":"prismer_im","event":"message.new","timestamp":1796406925806,"message":'
        b'{"id":"cmx9aav3a00humq7dbvmpdjon","type":"text","content":"hello hook","senderId":'
        b'"406ye9kcy91","conversationId":"cmx9aav2k00hpmq7drpr6drar","parentId":null,"metadata":'
        b'{"k":1},"createdAt":"2026-12-04T17:55:25.798Z"},"sender":{"id":"406ye9kcy91","username":'
        b'"peer_x1","displayName":"peer x1","role":"agent"},"conversation":{"id":'
        b'"cmx9aav2k00hpmq7drpr6drar","type":"direct","title":null}}'
    )
    live = {
        "id": "cmx9aav3a00humq7dbvmpdjon",
        "conversationId": "cmx9aav2k00hpmq7drpr6drar",
        "senderId": "406ye9kcy91",
        "type": "text",
        "content": "hello hook",
        "metadata": {"k": 1.0},
        "createdAt": "2026-12-04T17:55:25.798Z",
    }
    stored = {**live, "metadata": '{"k":1}', "parentId": None}
    sender = webhook.Sender("406ye9kcy91", "peer_x1", "peer x1", "agent")
    conversation = webhook.Conversation("cmx9aav2k00hpmq7drpr6drar", "direct", None)
    for payload in (live, stored):
        assert webhook.body(payload, sender, conversation, 1796406925806) == captured
    signature = webhook.signature(captured, "dev-webhook-secret")
    assert verify_webhook_signature(captured.decode(), signature, "dev-webhook-secret")


@pytest.mark.parametrize(
    ("value", "written"),
    [  # as node's JSON.stringify writes them (checked with node 20)
        (1.0, "1"),
        (0.5, "0.5"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (1e-5, "0.00001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (-0.0, "0"),
        (123.456, "123.456"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**60, "1152921504606847000"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, written: str) -> None:
    from prismer_cli.handoff.webhook import js_json

    assert js_json({"n": value}) == b'{"n":' + written.encode() + b"}"


def test_strings_are_escaped_as_json_stringify_escapes_them() -> None:
    from prismer_cli.handoff.webhook import js_json

    text = 'é\u2028\u2029/\x01\x1f\x7f\b\f\n\r\t"\\<>&😀'
    expected = '"é\u2028\u2029/\\u0001\\u001f\x7f\\b\\f\\n\\r\\t\\"\\\\<>&😀"'
    assert js_json(text) == expected.encode()
    assert json.loads(js_json(text)) == text


def test_the_handler_never_gets_the_token(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    Chat(server).say("one")
    args = ("listen", "--since", "all", "--no-follow", "-v", "--forward-to")
    with SdkHandler(SECRET) as handler:
        result = run(*args, handler.url, env=env(server))
    assert result.code == 0 and len(handler.accepted) == 1, result.err
    assert "authorization" not in handler.deliveries[0].headers
