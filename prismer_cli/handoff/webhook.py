"""One webhook request as Prismer Cloud builds it (docs/protocol.md "Webhooks";
`services/webhook.service.ts` of Prismer-AI/PrismerCloud: dispatch, deliver, sign).

The body is `JSON.stringify` of `{source, event, timestamp, message, sender, conversation}`, keys
in that order: compact, UTF-8 (no `\\u` escapes but for control characters), `/` and U+2028 as
they are, and numbers as JavaScript writes them (`1` for 1.0, `1e+21`, `0.00001`), which orjson
does for everything but floats: those go in as fragments written by `js_number`. The signature
is the hex HMAC-SHA256 of exactly those bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

SOURCE = "prismer_im"
EVENT = "message.new"
USER_AGENT = "Prismer-IM/0.3.0"  # the server's own
DEFAULT_SECRET = "dev-webhook-secret"  # the server's WEBHOOK_SECRET when none is set
SIGNATURE_HEADER = "X-Prismer-Signature"
JS_SAFE_INTEGER = 2**53 - 1  # beyond it JSON.parse keeps a double, not the integer

JSON = dict[str, Any]


@dataclass(frozen=True)
class Sender:
    id: str
    username: str
    display_name: str
    role: str

    def view(self) -> JSON:
        return {
            "id": self.id,
            "username": self.username,
            "displayName": self.display_name,
            "role": self.role,
        }


@dataclass(frozen=True)
class Conversation:
    id: str
    type: str
    title: str | None

    def view(self) -> JSON:
        return {"id": self.id, "type": self.type, "title": self.title}


def message_view(payload: JSON) -> JSON:
    """The body's `message` from a `message.new` payload, live (metadata an object) or stored
    (metadata a JSON string): metadata parsed as safeJsonParse does ({} when it is no object),
    parentId null when absent."""
    return {
        "id": _text(payload.get("id")),
        "type": _text(payload.get("type"), "text"),
        "content": _text(payload.get("content")),
        "senderId": _text(payload.get("senderId")),
        "conversationId": _text(payload.get("conversationId")),
        "parentId": _text_or_none(payload.get("parentId")),
        "metadata": _metadata(payload.get("metadata")),
        "createdAt": _text(payload.get("createdAt")) or js_iso(time.time()),
    }


def body(payload: JSON, sender: Sender, conversation: Conversation, now_ms: int) -> bytes:
    """The exact bytes the server would POST for this message."""
    document = {
        "source": SOURCE,
        "event": EVENT,
        "timestamp": now_ms,
        "message": message_view(payload),
        "sender": sender.view(),
        "conversation": conversation.view(),
    }
    return js_json(document)


def signature(data: bytes, secret: str) -> str:
    """`sha256=` and the hex HMAC-SHA256 of the body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def headers(data: bytes, secret: str, forwarded_by: str) -> dict[str, str]:
    """The server's headers, in its order, and ours last."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(data, secret),
        "X-Prismer-Event": EVENT,
        "User-Agent": USER_AGENT,
        "X-Prismer-Forwarded-By": forwarded_by,
    }


def js_json(value: Any) -> bytes:
    """`JSON.stringify(value)` as UTF-8 bytes (value: what a JSON parser gives)."""
    return orjson.dumps(_js_numbers(value))


def _js_numbers(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _js_numbers(v) for k, v in value.items()}
    if kind is list:
        return [_js_numbers(v) for v in value]
    if kind is float:
        return orjson.Fragment(js_number(value))
    if kind is int and abs(value) > JS_SAFE_INTEGER:
        return orjson.Fragment(js_number(float(value)))
    return value


def js_number(x: float) -> str:
    """A double as JavaScript's Number#toString writes it (ECMA-262 Number::toString): the
    shortest digits that read back as x (Python's repr has the same), placed as JS places them."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"  # JSON.stringify's choice; a JSON document holds none
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        sign_e = "+" if e >= 0 else "-"
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{head}e{sign_e}{abs(e)}"
    return sign + text


def js_iso(seconds: float) -> str:
    """Date#toISOString: UTC, milliseconds, Z."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _metadata(value: Any) -> JSON:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
