"""The two handlers an event can be handed to, each one attempt at a time: a POST to
--forward-to (deliver.Forwarder) and a command run by --exec (execute.py). An attempt ends in
an `Outcome`: accepted (a 2xx, exit 0) or not, with what to report.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from prismer_cli.errors import ConnectError, UsageError
from prismer_cli.retry import Deadline
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.trace import Tracer
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.watchdog import Watch

REPLY_PREVIEW = 120  # characters of the handler's answer shown on stderr


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    status: int | None  # HTTP status, or the command's exit status; None: no answer at all
    ms: int
    detail: str = ""  # the answer (cut), or why there was none
    reply: dict[str, Any] | None = None  # a handler's {"content", "type"?} answer


def check_url(url: str) -> str:
    """--forward-to: an http or https URL with a host, else exit 2."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--forward-to takes an http:// or https:// URL, not {url!r}")
    return url


class Forwarder:
    """POSTs bodies to one URL, one request at a time (a kept-alive session), directly as the
    server's fetch does: never through an HTTP(S)_PROXY, which would not reach a localhost
    handler (a CA bundle given by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is still used)."""

    def __init__(self, url: str, timeout: float, trace: Tracer | None = None) -> None:
        self.url = url
        self.timeout = timeout  # each attempt's bound (the server's 10 s)
        self._session = traced(requests.Session(), trace)  # --trace: the body, not the secret
        self._session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle
        self._host = urlsplit(url).hostname or url
        self._watch = Watch()

    def post(self, body: bytes, headers: dict[str, str], deadline: Deadline) -> Outcome:
        started = time.monotonic()
        wait = deadline.cut(self.timeout)
        try:  # one step, answer included, by its deadline; cut at once by a stop (watchdog.py)
            with self._watch.step(deadline.within(wait).at, f"POST to {self._host}"):
                answer = self._session.post(self.url, data=body, headers=headers, timeout=wait)
        except requests.RequestException as exc:
            return Outcome(False, None, _ms_since(started), reason(exc, self._host))
        except ConnectError as exc:  # the step's deadline: the handler answers too slowly
            return Outcome(False, None, _ms_since(started), str(exc))
        ms = _ms_since(started)
        text = answer.text
        ok = 200 <= answer.status_code < 300
        return Outcome(ok, answer.status_code, ms, _cut(text), reply_of(text) if ok else None)

    def close(self) -> None:
        self._session.close()


def reply_of(text: str) -> dict[str, Any] | None:
    """A handler's answer that is a reply: a JSON object with a string `content`."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("content"), str) and data["content"]:
        return data
    return None


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= REPLY_PREVIEW else flat[: REPLY_PREVIEW - 1] + "…"


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
