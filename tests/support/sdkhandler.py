"""A webhook handler on 127.0.0.1 built on Prismer's own Python SDK (`prismer.webhook`), the
judge of what `--forward-to` sends: every request goes through `PrismerWebhook.handle_async`,
which verifies the signature (401 otherwise) and parses the body into the SDK's typed payload
(400 otherwise), exactly as a user's handler would.

    with SdkHandler(secret="s3cret") as handler:
        ... prismer-rt listen --forward-to handler.url ...
        handler.accepted  # the parsed payloads, in order

`statuses` scripts answers before the SDK's own (e.g. [500, 500] for two failures first);
`reply` makes the handler answer {"content": reply + message content}; `port` may be given to
start a handler where an earlier one was down (`free_port()`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

with warnings.catch_warnings():  # the SDK's pydantic models use the v1 class Config
    warnings.simplefilter("ignore", DeprecationWarning)
    from prismer.webhook import (
        PrismerWebhook,
        WebhookPayload,
        WebhookReply,
        verify_webhook_signature,
    )

__all__ = ["Delivery", "SdkHandler", "free_port", "verify_webhook_signature"]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int  # what the handler answered
    payload: WebhookPayload | None  # parsed by the SDK when it verified the signature


@dataclass
class SdkHandler:
    secret: str
    statuses: list[int] = field(default_factory=list)
    reply: str | None = None
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[WebhookPayload]:
        """The payloads the SDK verified, parsed and answered 2xx, in arrival order."""
        with self._lock:
            return [d.payload for d in self.deliveries if d.payload and d.status < 300]

    async def _on_message(self, payload: WebhookPayload) -> WebhookReply | None:
        if self.reply is None:
            return None
        return WebhookReply(content=self.reply + payload.message.content)

    def _handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            scripted = self.statuses.pop(0) if self.statuses else None
        hook = PrismerWebhook(self.secret, self._on_message)
        text = body.decode("utf-8")
        if scripted is not None:
            status, data = scripted, {"error": "scripted"}
        else:
            status, data = asyncio.run(
                hook.handle_async(text, headers.get("x-prismer-signature", ""))
            )
        payload = (
            hook.parse(text) if hook.verify(text, headers.get("x-prismer-signature", "")) else None
        )
        with self._lock:
            self.deliveries.append(Delivery(headers, body, status, payload))
        return status, data

    def __enter__(self) -> SdkHandler:
        judge = self

        class Request(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, data = judge._handle(headers, body)
                answer = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Request)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on (a handler that is down: connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
