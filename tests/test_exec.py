"""listen --exec CMD (issue 20): one command per event, exit 0 accepts it, and with --cursor-file
an event the command failed on is handed on again by the next run, never lost, never twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Background, env_for, run, user_id, wait_for_connections
from tests.support.sdkhandler import SdkHandler
from tests.support.serverfixture import ServerFactory, ServerProcess
from tests.test_forward import QUICK, Chat

DIALECTS = ["server", "docs"]
TOKEN = "bob-token-long-enough-to-look-for"  # a token is looked for in every variable's value
BOB = user_id(TOKEN)

# The handler: records each attempt (its variables, whether stdin was PRISMER_EVENT, whether
# the token reached it), refuses an event whose content says "fail" until $OK_FILE exists, and
# appends each accepted event's line to $ACCEPTED.
HANDLER = r"""
line=$(cat)
same=no; [ "$line" = "$PRISMER_EVENT" ] && same=yes
leak=no; env | grep -qF "$(cat "$TOKEN_COPY")" && leak=yes
printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$PRISMER_EVENT_TYPE" "${PRISMER_MESSAGE_ID-}" \
  "${PRISMER_CONVERSATION_ID-}" "${PRISMER_SENDER_ID-}" "${PRISMER_SEQ-}" "$same" "$leak" \
  "${PRISMER_TOKEN-unset}" "${AGENT_TOKEN-unset}" >> "$ATTEMPTS"
echo "handler says hello"
case "$line" in *fail*) [ -e "$OK_FILE" ] || exit 1;; esac
printf '%s\n' "$line" >> "$ACCEPTED"
"""


class Handler:
    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "handler.sh"
        self.script.write_text(HANDLER)
        self.attempts = tmp_path / "attempts"
        self.accepted = tmp_path / "accepted"
        self.ok_file = tmp_path / "ok"
        self.token_copy = tmp_path / "token"  # what the handler looks for in its environment
        self.token_copy.write_text(TOKEN)
        self.command = f"sh {self.script}"

    def env(self, server: ServerProcess, **extra: str) -> dict[str, str]:
        return env_for(
            server.url,
            TOKEN,
            **QUICK,
            ATTEMPTS=str(self.attempts),
            ACCEPTED=str(self.accepted),
            OK_FILE=str(self.ok_file),
            TOKEN_COPY=str(self.token_copy),
            AGENT_TOKEN=TOKEN,
            COPY_OF_THE_TOKEN=f"Bearer {TOKEN}",
            **extra,
        )

    def accepted_lines(self) -> list[dict[str, Any]]:
        if not self.accepted.exists():
            return []
        return [json.loads(line) for line in self.accepted.read_text().splitlines()]

    def attempt_rows(self) -> list[list[str]]:
        return [row.split("|") for row in self.attempts.read_text().splitlines()]


def key(frame: dict[str, Any]) -> tuple[str, Any]:
    payload = frame["payload"]
    return frame["type"], payload.get("id") or payload.get("conversationId")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_failing_command_gets_every_event_once_in_order_across_runs(
    server_factory: ServerFactory, tmp_path: Path, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", TOKEN])
    chat = Chat(server, BOB)
    chat.say("m0")  # the conversation exists before the first run
    handler = Handler(tmp_path)
    cursor = str(tmp_path / "exec.cursor")
    args = ("listen", "--cursor-file", cursor, "--exec", handler.command)
    live = Background(*args, "--since", "all", "--timeout", "3", env=handler.env(server))
    wait_for_connections(server, 1)
    for content in ("m1", "fail2", "m3"):
        chat.say(content)
    first = live.wait()
    assert first.code == 124, first.err  # the command never accepted fail2
    assert "the next run hands it on first" in first.err
    chat.say("m4")  # between the runs
    handler.ok_file.touch()
    second = run(*args, "--no-follow", env=handler.env(server))
    assert second.code == 0, second.err
    handler.ok_file.unlink()  # and once more, failing on a stored event this time
    for content in ("m5", "fail6", "m7"):
        chat.say(content)
    third = run(*args, "--no-follow", "--timeout", "1.5", env=handler.env(server))
    assert third.code == 124, third.err
    handler.ok_file.touch()
    fourth = run(*args, "--no-follow", env=handler.env(server))
    assert fourth.code == 0, fourth.err
    reference = run("listen", "--since", "all", "--no-follow", env=handler.env(server))
    expected = [key(frame) for frame in reference.lines]
    assert [key(frame) for frame in handler.accepted_lines()] == expected  # each once, in order
    messages = [m for t, m in expected if t == "message.new"]
    assert messages == chat.sent
    failed = [row for row in handler.attempt_rows() if row[1] in (chat.sent[2], chat.sent[6])]
    assert len(failed) >= 8  # retried in the failing run (3 attempts, then the backoff), again
    runs = first.lines + second.lines + third.lines + fourth.lines
    printed = [m for t, m in map(key, runs) if t == "message.new"]
    sent = chat.sent  # on stdout before it is handed on: each failed event in two runs
    assert printed == sent[:3] + sent[2:7] + sent[6:]


def test_the_command_gets_the_event_on_stdin_and_in_its_environment(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(dialect="server", tokens=["alice", TOKEN])
    chat = Chat(server, BOB)
    chat.say("hello")
    handler = Handler(tmp_path)
    result = run(
        "listen", "--since", "all", "--no-follow", "--type", "message.new", "--exec",
        handler.command, env=handler.env(server),
    )  # fmt: skip
    assert result.code == 0, result.err
    ((kind, message_id, conversation, sender, seq, same, leak, token, agent),) = (
        handler.attempt_rows()
    )
    (line,) = result.out.splitlines()
    event = json.loads(line)
    assert (kind, message_id, conversation, sender) == (
        "message.new",
        chat.sent[0],
        chat.conversation,
        user_id("alice"),
    )
    assert seq == str(event["seq"])
    assert same == "yes"  # stdin is the line, and PRISMER_EVENT too
    assert handler.accepted_lines() == [event]  # the very line printed on stdout
    assert (leak, token, agent) == ("no", "unset", "unset")  # no variable holds the token
    assert "handler says hello" in result.err and "handler says hello" not in result.out


def test_a_command_past_exec_timeout_fails_and_without_a_cursor_is_skipped(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(dialect="server", tokens=["alice", TOKEN])
    Chat(server, BOB).say("slow")
    handler = Handler(tmp_path)
    result = run(
        "listen", "--since", "all", "--no-follow", "--type", "message.new", "--meta",
        "--exec", "sleep 5", "--exec-timeout", "0.3", env=handler.env(server),
    )  # fmt: skip
    assert result.code == 0, result.err
    failed = [line["payload"] for line in result.lines if line["type"] == "prismer-rt.exec-failed"]
    assert [(f["attempt"], f["reason"]) for f in failed] == [(3, "timed out after 0.3 s")]
    assert result.err.count("timed out after 0.3 s") == 3 and "skipped" in result.err


def test_with_forward_to_both_must_accept(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(dialect="server", tokens=["alice", TOKEN])
    chat = Chat(server, BOB)
    chat.say("one")
    handler = Handler(tmp_path)
    env = handler.env(server)
    with SdkHandler(QUICK["PRISMER_WEBHOOK_SECRET"], statuses=[500]) as hook:
        live = Background(
            "listen", "--since", "all", "--type", "message.new", "--meta", "--count", "1",
            "--timeout", "5", "--forward-to", hook.url, "--exec", handler.command, env=env,
        )  # fmt: skip
        result = live.wait()
    assert result.code == 0, result.err
    kinds = [line["type"] for line in result.lines]
    assert [k for k in kinds if not k.endswith(("connected", "caught-up"))] == [
        "message.new",
        "prismer-rt.forwarded",
        "prismer-rt.executed",
    ]
    assert [p.message.id for p in hook.accepted] == chat.sent
    assert [key(frame) for frame in handler.accepted_lines()] == [("message.new", chat.sent[0])]
