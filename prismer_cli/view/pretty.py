"""`--pretty`: one human line per event (docs/cli.md "Human views").

    14:03:07.123 message.new conv_8f2 Alice: hello there
                                             and its second line
    14:03:07.200 #17 message.new conv_8f2 Bob: a stored event, with its seq
    14:03:08.004 task.updated t1 done
    14:03:08.100 presence.update Bob online
    14:03:09.000 * connected ws, server dialect, as usr_1 (connection 1)
    14:03:10.000 ! error Invalid JSON

Each line: the local receive time, the `seq` of an event read from the log, the type, the
conversation id (whole), who sent it (a name where the event or a look-up gives one, else the
id) and what it says; anything without a shape of its own shows its payload as compact JSON.
Text from the server never reaches the terminal raw: control characters are shown escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from prismer_cli.view.clock import hms
from prismer_cli.view.color import BOLD, DIM, family_style
from prismer_cli.view.width import Segment, cells

Line = list[Segment]
Names = Callable[[str], str | None]  # a user id to a display name, or None
LIFECYCLE = "prismer-rt."
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text with tabs as spaces and every other control character escaped (\\x1b, ...)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text.replace("\t", "    "))


def compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # pragma: no cover - what orjson.loads gives always dumps
        return str(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else compact(value)


def _no_names(user_id: str) -> str | None:
    return None


class PrettyEvents:
    """Renders envelopes (events, stored events, lifecycle records, error frames) as lines."""

    def __init__(self, names: Names = _no_names) -> None:
        self._names = names

    def __call__(self, frame: dict[str, Any], received: float) -> list[Line]:
        kind = frame.get("type")
        kind = kind if isinstance(kind, str) else "?"
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        head: Line = [(hms(received), DIM), (" ", None)]
        if "seq" in frame:
            head += [(f"#{_text(frame['seq'])}", DIM), (" ", None)]
        if kind.startswith(LIFECYCLE):
            name = "* " + kind[len(LIFECYCLE) :]
            words = printable(lifecycle(kind, payload))
            return [[*head, (name, family_style(kind)), (" ", None), (words, None)]]
        style = family_style(kind)
        head.append((("! " if kind == "error" else "") + printable(kind), style))
        conversation = payload.get("conversationId")
        if kind.startswith("conversation.") and conversation is None:
            conversation = payload.get("id")
        if isinstance(conversation, str):
            head += [(" ", None), (printable(conversation), None)]
        head.append((" ", None))
        return self._body(kind, payload, head)

    def _body(self, kind: str, payload: dict[str, Any], head: Line) -> list[Line]:
        if kind == "error":
            return [[*head, (printable(error_text(payload)), style_of_error())]]
        if kind.startswith("message.") and "content" in payload:
            who = self._sender(payload)
            if who:
                head = [*head, (printable(who), BOLD), (": ", None)]
            return _multiline(head, _text(payload["content"]))
        if kind.startswith("task."):
            task = payload.get("taskId") or payload.get("id")
            status = payload.get("status")
            if task is not None or status is not None:
                words = " ".join(_text(v) for v in (task, status) if v is not None)
                return [[*head, (printable(words), None)]]
        if kind.startswith("presence."):
            who = payload.get("name") or self._name_of(payload.get("userId"))
            status = payload.get("status")
            if who is not None or status is not None:
                words = " ".join(_text(v) for v in (who, status) if v is not None)
                return [[*head, (printable(words), None)]]
        return [[*head, (printable(compact(payload)), None)]]

    def _sender(self, payload: dict[str, Any]) -> str | None:
        name = payload.get("senderName")
        if isinstance(name, str) and name:
            return name
        sender = payload.get("sender")
        if isinstance(sender, dict):
            for key in ("displayName", "username", "name"):
                if isinstance(sender.get(key), str) and sender[key]:
                    return str(sender[key])
        return self._name_of(payload.get("senderId"))

    def _name_of(self, user_id: Any) -> str | None:
        if not isinstance(user_id, str) or not user_id:
            return None
        return self._names(user_id) or user_id


def style_of_error() -> str | None:
    return family_style("error")


def error_text(payload: dict[str, Any]) -> str:
    message = payload.get("message") or payload.get("error")
    code = payload.get("code")
    text = _text(message) if message is not None else compact(payload)
    return f"{text} ({_text(code)})" if code is not None else text


def lifecycle(kind: str, payload: dict[str, Any]) -> str:
    """What a lifecycle record says, in words."""
    name = kind[len(LIFECYCLE) :]
    get = payload.get
    if name == "connected":
        who = get("userId")
        words = f"over {get('transport')}, {get('dialect')} dialect"
        return words + (f", as {who}" if who else "") + f" (connection {get('connection')})"
    if name == "reconnecting":
        return f"attempt {get('attempt')} in {get('delay')} s: {get('reason')}"
    if name == "disconnected":
        return str(get("reason"))
    if name == "caught-up":
        return f"stored events end at seq {get('cursor')}; live from here"
    return compact(payload)


def _multiline(head: Line, content: str) -> list[Line]:
    """The first line after `head`, the next ones indented to where the content began."""
    lines = content.replace("\r\n", "\n").split("\n")
    indent = " " * sum(cells(char) for text, _ in head for char in text)
    out = [[*head, (printable(lines[0]), None)]]
    out += [[(indent + printable(line), None)] for line in lines[1:]]
    return out
