"""`--trace` for every HTTP request (REST, the SSE stream, the event log, token refresh):
a requests adapter that traces the request, then its answer or its failure.

    session = traced(requests.Session(), endpoint.trace)   # unchanged without --trace
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from prismer_cli.transport.reasons import reason
from prismer_cli.transport.trace import Tracer, _path


class TracingAdapter(HTTPAdapter):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self._tracer = tracer

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        tracer = self._tracer
        method, url = request.method or "GET", request.url or ""
        stream = bool(kwargs.get("stream"))
        line = f"{method} {_path(url)}"
        for name in ("Last-Event-ID", "X-Idempotency-Key"):
            if name in request.headers:
                line += f" {name}: {request.headers[name]}"
        body = request.body
        if body:
            line += " " + (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)
        tracer.sent(line)
        start = time.monotonic()
        try:
            answer = super().send(request, **kwargs)
        except requests.RequestException as exc:
            tracer.note(f"{method} {_path(url)}: {reason(exc, urlsplit(url).hostname)}")
            raise
        millis = (time.monotonic() - start) * 1000
        if stream and answer.status_code < 300:  # an event stream: its headers, not its body
            tracer.answer(method, url, answer.status_code, millis, None)
            tracer.headers("<", answer.headers)
        else:
            tracer.answer(method, url, answer.status_code, millis, answer.content)
        return answer


def traced(session: requests.Session, tracer: Tracer | None) -> requests.Session:
    """The session, its requests traced when there is a tracer."""
    if tracer is not None:
        adapter = TracingAdapter(tracer)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session
