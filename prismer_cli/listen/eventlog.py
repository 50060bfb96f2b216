"""The server's event log, `GET /api/im/sync` (docs/protocol.md "The event log"), read in pages.

Guards against the real server's traps: a page with no events ends the reading whatever
`hasMore` says (`limit=0` answers `hasMore: true` with nothing); `since` is always sent as a
plain integer (anything else is a 500 there); a 404 means the server keeps no history.

Stored events print as the live envelope with everything else the log's record has:
`{"type": <type>, "payload": <data>, "seq": <seq>, "conversationId": <the record's>, "at": <when
it was logged>}`, with `data.metadata` (a JSON string in the log) turned back into the object the
live frame carries (docs/cli.md "Cron and scripts").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
import requests
import urllib3

from prismer_cli.errors import AuthError, ConnectError, UsageError
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import Dialect
from prismer_cli.protocol.endpoints import JSON, SYNC_PATH
from prismer_cli.redact import redact
from prismer_cli.retry import Deadline
from prismer_cli.transport.base import Endpoint, retry_after
from prismer_cli.transport.keepalive import KeptAlive, Unusual, plain
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.urls import endpoint as endpoint_url
from prismer_cli.transport.watchdog import StepTimeout, Watch

PAGE = 500  # the real server's largest page
Body = bytes | bytearray


class NoHistory(UsageError):
    """The server keeps no event log (GET /api/im/sync is 404)."""


@dataclass(frozen=True)
class Page:
    events: list[JSON]
    cursor: int
    has_more: bool


class SyncReader:
    """GET /api/im/sync over one keep-alive session."""

    def __init__(
        self, endpoint: Endpoint, log: Log, token: Callable[[], str] | None = None
    ) -> None:
        self._endpoint = endpoint
        self._log = log
        self._token = token or (lambda: endpoint.token)  # the current one, refreshed or not
        self._url = endpoint_url(endpoint.url, SYNC_PATH)
        self._session = traced(_session(self._url), endpoint.trace)
        # A plain http:// log without --trace: its pages over a socket of our own (keepalive.py)
        self._kept: KeptAlive | None = None
        if endpoint.trace is None and plain(self._url):
            self._kept = KeptAlive(self._url, lambda: self._watch.fired is None)
        self._asked: tuple[int, int] | None = None  # (since, limit) of a page asked ahead
        self._watch = Watch()  # each page, answer included, ends by its deadline (watchdog.py)
        self._template: requests.PreparedRequest | None = None  # None: traced, Session.get
        if endpoint.trace is None:
            self._template = self._session.prepare_request(requests.Request("GET", self._url))
        self._joint = (
            "&" if self._template is not None and "?" in (self._template.url or "") else "?"
        )

    def until(self, deadline: Deadline) -> None:
        """End every request by this deadline (--timeout holds for the catch-up too)."""
        self._endpoint = self._endpoint.until(deadline)

    def page(self, since: int, limit: int = PAGE) -> Page:
        """The events after `since` (at most `limit`, oldest first)."""
        deadline = self._endpoint.deadline
        if deadline.expired():
            raise ConnectError("--timeout came while reading the event log")
        wait = deadline.cut(self._endpoint.timeouts.connect)
        try:
            with self._watch.step(deadline.within(wait).at, "a page of the event log"):
                status, headers, content = self._get(since, limit, wait)
        except StepTimeout as exc:
            raise StepTimeout(f"cannot read the event log: {exc}") from None
        except (requests.RequestException, OSError) as exc:
            problem = redact(reason(exc, urlsplit(self._url).hostname), self._token())
            raise ConnectError(f"cannot read the event log: {problem}") from None
        if status == 404:
            raise NoHistory(
                "this server keeps no event history (GET /api/im/sync is 404): "
                "--since and --cursor-file cannot be used with it"
            )
        if status in (401, 403):
            raise AuthError(f"the server rejected the token (HTTP {status} from the event log)")
        if status != 200:
            raise ConnectError(
                f"the event log answered HTTP {status}", retry_after=retry_after(headers)
            )
        try:
            body = orjson.loads(content)
            data = body["data"]
            events, cursor = data["events"], data["cursor"]
            has_more = bool(data.get("hasMore"))
            if type(events) is not list or type(cursor) is not int:
                raise TypeError("no list of events and whole-number cursor")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            what = str(exc) or type(exc).__name__
            raise ConnectError(f"the event log answered something unexpected ({what})") from None
        return Page(events, cursor, has_more)

    def _get(self, since: int, limit: int, wait: float) -> tuple[int, Mapping[str, str], Body]:
        """One GET of the log: the answer's status, headers and body, read whole.

        A plain URL without --trace: over our own kept-alive socket (keepalive.py), until an
        answer it does not read (a redirect, a cookie): that page and the next ones through
        requests. Through requests, the request is prepared once (`_template`, as Session.get
        would prepare it) and each page only sets its query and token; the body is read from
        the stream in one call, not in requests' 10 KiB chunks. With --trace, Session.get,
        whose adapter traces the body too."""
        query, auth = self._request(since, limit)
        asked, self._asked = self._asked == (since, limit), None
        if self._kept is not None:
            try:
                if asked and self._kept.asked:
                    return self._kept.answer(wait)
                return self._kept.get(query, auth, wait)
            except Unusual:
                self._kept.close()
                self._kept = None
        if self._template is None:
            answer = self._session.get(self._url, params=query, headers=auth, timeout=(wait, wait))
            return answer.status_code, answer.headers, answer.content
        request = self._template.copy()
        request.url = f"{request.url}{self._joint}{query}"
        request.headers.update(auth)
        answer = self._session.send(request, stream=True, timeout=(wait, wait))
        if answer.cookies:  # one the log sets (a balancer's) goes with the next pages, as with get
            self._template = self._session.prepare_request(requests.Request("GET", self._url))
        return answer.status_code, answer.headers, _body(answer)

    def _request(self, since: int, limit: int) -> tuple[str, dict[str, str]]:
        """A page's query and its Authorization header (the current token, refreshed or not)."""
        return f"since={int(since)}&limit={int(limit)}", {
            "Authorization": f"Bearer {self._token()}"
        }

    def drop_asked(self) -> None:
        """A page asked ahead and no longer wanted: its connection goes, its answer unread."""
        if self._asked is not None and self._kept is not None:
            self._kept.close()
        self._asked = None

    @property
    def asks_ahead(self) -> bool:
        """Whether `ask_ahead` does anything: a plain log, over our own kept-alive socket."""
        return self._kept is not None

    def ask_ahead(self, since: int) -> None:
        """Ask now for the page after `since`, which `page(since)` reads next: the server
        answers and the kernel keeps the answer while this thread prints the page before
        (prefetch.py, Asked). A failure is left for that page() to meet, asking again."""
        kept, deadline = self._kept, self._endpoint.deadline
        if kept is None or deadline.expired():
            return
        wait = deadline.cut(self._endpoint.timeouts.connect)
        query, auth = self._request(since, PAGE)
        try:
            with self._watch.step(deadline.within(wait).at, "a page of the event log"):
                kept.ask(query, auth, wait)
        except (OSError, Unusual, ConnectError):  # StepTimeout too
            kept.close()
            return
        self._asked = (since, PAGE)

    def after(self, since: int, ask_ahead: bool = False) -> Iterator[list[JSON]]:
        """Every page after `since`; stops at a page with no events, whatever hasMore says.
        `ask_ahead`: the next page is asked for before this one is handed over (ask_ahead()).
        (The catch-up reads them one page ahead: prefetch.py.)"""
        while True:
            page = self.page(since)
            more = bool(page.events) and page.has_more
            if ask_ahead and more and page.cursor > since:
                self.ask_ahead(page.cursor)
            if page.events:
                yield page.events
            if not more:
                return
            if page.cursor <= since:
                raise ConnectError(f"the event log's cursor went backwards ({page.cursor})")
            since = page.cursor

    @property
    def step_limit(self) -> float:
        """The longest one page may take (the connect timeout)."""
        return self._endpoint.timeouts.connect

    def wake(self) -> None:
        """Cut the page under way, in whatever thread (prefetch.py); a no-op between pages."""
        self._watch.wake()

    def anything_after(self, since: int) -> bool:
        return bool(self.page(since, 1).events)

    def head(self, start: int = 0) -> int:
        """The seq of this user's newest event (`start` when there is none after it): a
        galloping then binary search on "is there anything after X" from `start`, a few dozen
        one-event pages even for millions of events, one when nothing follows `start`."""
        if not self.anything_after(start):
            return start
        low, step = start, 1  # anything after low; low + step: not known yet
        high = start + step
        while self.anything_after(high):
            low, step = high, step * 2
            high = start + step
        while high - low > 1:  # anything after low, nothing after high
            middle = (low + high) // 2
            if self.anything_after(middle):
                low = middle
            else:
                high = middle
        return high

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
        self._session.close()


def _session(url: str) -> requests.Session:
    """A keep-alive session whose environment settings (proxies, CA bundle) are read once.

    requests otherwise reads os.environ (and ~/.netrc) again for every request: a cost per page
    that weighs on a long catch-up. The Authorization header is ours (SyncReader.page); .netrc
    is not consulted.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


def _body(answer: requests.Response) -> bytes:
    """The whole body of a streamed answer, its failures as requests' own (the ones
    Response.content raises for the same urllib3 errors)."""
    try:
        return bytes(answer.raw.read(decode_content=True))
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc


def check_cursor(reader: SyncReader, cursor: int, where: str) -> None:
    """Refuse a cursor past this user's newest event: the real server echoes any `since`
    back, so a cursor from another or a reset server would otherwise be trusted silently."""
    if cursor <= 0 or reader.anything_after(cursor - 1):
        return
    head = reader.head()
    if cursor > head:
        raise UsageError(
            f"{where} is past the newest event of this user's log (seq {head}): "
            "is it from another server, or was the server's log reset? "
            "Use --since all or --since now (or delete the cursor file)"
        )


def envelope(event: JSON) -> JSON:
    """A stored event as the live envelope, with its seq and the record's conversationId and
    at (when the record has them); metadata as an object.

    On the catch-up's hot path (one call per stored event): no context manager, and the
    log's usual `"{}"` becomes `{}` without a parse."""
    data = event.get("data")
    if type(data) is dict:
        metadata = data.get("metadata")
        if type(metadata) is str:
            if metadata == "{}":
                data["metadata"] = {}
            else:
                with contextlib.suppress(orjson.JSONDecodeError):
                    data["metadata"] = orjson.loads(metadata)
    frame = {"type": event.get("type"), "payload": data, "seq": event.get("seq")}
    if "conversationId" in event:
        frame["conversationId"] = event["conversationId"]
    if "at" in event:
        frame["at"] = event["at"]
    return frame


def stored_key(kind: object, payload: object) -> Hashable:
    """The de-duplication key of a stored event: its live twin's (Dialect.dedupe_key, which
    reads the envelope's type and payload; the record's seq, conversationId and at are not part
    of it), so that what the catch-up printed does not print again when it also comes live, and
    the log's second copy of a conversation.create does not print either."""
    if kind == "message.new" and type(payload) is dict:
        message_id = payload.get("id")
        if type(message_id) is str:
            return message_id
    return Dialect.dedupe_key(kind, payload, {"type": kind, "payload": payload})  # type: ignore[arg-type]


def seq_of(frame: JSON) -> int:
    seq = frame.get("seq")
    return seq if type(seq) is int else 0
