"""`send --pretty`, `mark-read --pretty`: one readable line per result record.

    14:03:07.123 confirmed send_message conv_1 line 1: message msg_8c1
    14:03:07.130 sent send_message conv_1 line 2: read by the server
    14:03:17.200 uncertain send_message conv_1 line 3: not confirmed by the server ...
    14:03:07.140 failed line 4: not JSON

The outcome is one of sent (the server provably read it), confirmed (the server answered with
it), uncertain (it may or may not have been delivered) and failed (with the reason).
"""

from __future__ import annotations

from typing import Any

from prismer_cli.view.clock import hms
from prismer_cli.view.color import DIM, OUTCOMES
from prismer_cli.view.pretty import Line, printable

UNCERTAIN_WORDS = "may or may not have been delivered"


def outcome(record: dict[str, Any]) -> str:
    """sent, confirmed, uncertain or failed."""
    if record.get("ok") is True:
        if record.get("sent") is True and "message" not in record:
            return "sent"
        return "confirmed"
    error = record.get("error")
    if isinstance(error, str) and UNCERTAIN_WORDS in error:
        return "uncertain"
    return "failed"


def result_line(record: dict[str, Any], received: float) -> list[Line]:
    word = outcome(record)
    line: Line = [(hms(received), DIM), (" ", None), (word, OUTCOMES.get(word)), (" ", None)]
    words = [
        str(record[key]) for key in ("action", "conversationId") if isinstance(record.get(key), str)
    ]
    if "line" in record:
        words.append(f"line {record['line']}")
    detail = _detail(record, word)
    text = " ".join(words) + (f": {detail}" if detail else "")
    return [[*line, (printable(text), None)]]


def _detail(record: dict[str, Any], word: str) -> str:
    if word in ("failed", "uncertain"):
        error = str(record.get("error", ""))
        code = record.get("code")
        return f"{error} ({code})" if code is not None else error
    message = record.get("message")
    if isinstance(message, dict) and message.get("id") is not None:
        return f"message {message['id']}"
    if word == "sent":
        return "read by the server"
    return ""
