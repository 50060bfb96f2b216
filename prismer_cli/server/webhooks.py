"""Webhooks, server dialect, as ``services/webhook.service.ts`` sends them: for each new message,
a POST to every agent participant but the sender that registered an ``endpoint``
(``POST /api/im/register`` with ``endpoint`` and ``webhookSecret``).

The body is ``JSON.stringify({source, event, timestamp, message, sender, conversation})``:
compact, UTF-8, numbers as JavaScript writes them (``_js_json``, written for this server and
sharing nothing with the client's own writer, so that a test comparing the two can fail). The
headers are ``Content-Type``, ``X-Prismer-Signature: sha256=<hex HMAC-SHA256 of the body>`` (the
agent's ``webhookSecret``, else ``WEBHOOK_SECRET`` from the environment, else
``dev-webhook-secret``), ``X-Prismer-Event`` and ``User-Agent: Prismer-IM/0.3.0``. Each attempt
times out after 10 s; 3 attempts, 2 s then 5 s apart; fire and forget. Each attempt is a
``webhook`` record of ``/_control/log`` (``url``, ``messageId``, ``attempt``, ``status`` or
``error``).

Leniency of the stand-in: it delivers to loopback and private addresses, which the real server
refuses (``isBlockedUrl``), since its handlers are on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from decimal import Decimal
from typing import Any

import aiohttp

from prismer_cli.server.control_log import ControlLog
from prismer_cli.server.formats import dumps, iso
from prismer_cli.server.records import Conversation, Message
from prismer_cli.server.state import Store

DEFAULT_SECRET = "dev-webhook-secret"
TIMEOUT = 10.0
WAITS = (2.0, 5.0)  # between the 3 attempts
JS_SAFE = 2**53


class Webhooks:
    def __init__(self, store: Store, log: ControlLog) -> None:
        self._store = store
        self._log = log
        self._secret = os.environ.get("WEBHOOK_SECRET") or DEFAULT_SECRET
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch(self, conversation: Conversation, message: Message) -> None:
        """A new message was stored: POST it to each agent endpoint of the conversation."""
        users = [self._store.user(user_id) for user_id in conversation.participants]
        sender = next((u for u in users if u is not None and u.id == message.sender_id), None)
        targets = [
            u
            for u in users
            if u is not None and u.role == "agent" and u.endpoint and u.id != message.sender_id
        ]
        if not targets or sender is None:
            return
        body = _js_json(
            {
                "source": "prismer_im",
                "event": "message.new",
                "timestamp": int(time.time() * 1000),
                "message": {
                    "id": message.id,
                    "type": message.type,
                    "content": message.content,
                    "senderId": message.sender_id,
                    "conversationId": message.conversation_id,
                    "parentId": message.parent_id,
                    "metadata": message.metadata,
                    "createdAt": iso(message.created_at),
                },
                "sender": {
                    "id": sender.id,
                    "username": sender.username,
                    "displayName": sender.display_name,
                    "role": sender.role,
                },
                "conversation": {"id": conversation.id, "type": conversation.type, "title": None},
            }
        ).encode()
        loop = asyncio.get_running_loop()
        for target in targets:
            assert target.endpoint is not None
            secret = target.webhook_secret or self._secret
            task = loop.create_task(self._deliver(target.endpoint, body, secret, message.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: bytes, secret: str, message_id: str) -> None:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Prismer-Signature": f"sha256={signature}",
            "X-Prismer-Event": "message.new",
            "User-Agent": "Prismer-IM/0.3.0",
        }
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(1, len(WAITS) + 2):
                record: dict[str, Any] = {"url": url, "messageId": message_id, "attempt": attempt}
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        await answer.read()
                        record["status"] = answer.status
                        ok = 200 <= answer.status < 300
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    record["error"] = type(exc).__name__
                    ok = False
                self._log.add("webhook", **record)
                if ok or attempt > len(WAITS):
                    return
                await asyncio.sleep(WAITS[attempt - 1])

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _js_json(value: Any) -> str:
    """``JSON.stringify`` of what a JSON parser gives: strings as ``dumps`` writes them (the
    same escapes as JavaScript), numbers through :func:`_js_number`."""
    if isinstance(value, dict):
        items = (f"{dumps(str(k))}:{_js_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_js_json(v) for v in value) + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return dumps(value)
    if isinstance(value, int) and abs(value) < JS_SAFE:
        return str(value)
    if isinstance(value, (int, float)):
        return _js_number(float(value))
    return dumps(value)


def _js_number(x: float) -> str:
    """Number#toString of a finite double: plain digits from 1e-6 up to below 1e21, else the
    exponent form (``1e+21``, ``1.5e-7``); the digits are repr's, the shortest that read back."""
    if x == 0:
        return "0"
    if x != x or abs(x) == float("inf"):
        return "null"
    exact = Decimal(repr(x)).normalize()
    exponent = exact.adjusted()  # the power of ten of the first digit
    if -7 < exponent < 21:
        text = format(exact, "f")
        return text[:-2] if text.endswith(".0") else text
    sign, digits, _ = exact.as_tuple()
    head = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return ("-" if sign else "") + f"{head}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
