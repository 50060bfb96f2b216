"""The catch-up's page work (prismer_cli/listen/catchup.py, prefetch.py, dedupe.py): the bulk
path for a page of plain messages prints exactly what one event at a time prints, the keys of a
page are remembered as key by key, and the page read ahead is handed over in order, failures
included, and cut at once when the catch-up ends."""

from __future__ import annotations

import copy
import random
import threading
import time
from typing import Any

import orjson
import pytest

from prismer_cli.errors import AuthError
from prismer_cli.listen import catchup
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import Page, SyncReader
from prismer_cli.listen.prefetch import Ahead
from prismer_cli.log import Log
from prismer_cli.transport.base import Endpoint
from prismer_cli.tuning import Timeouts
from tests.support.serverfixture import BlackHole


def _message(number: int, **changes: Any) -> dict[str, Any]:
    seq = number
    event: dict[str, Any] = {
        "seq": seq,
        "type": "message.new",
        "data": {
            "id": f"m{seq}",
            "conversationId": "c1",
            "senderId": "u2",
            "type": "text",
            "content": f'hello {seq} \u00e9 "quoted" }},{{"type":',
            "metadata": "{}",
            "parentId": None,
        },
        "conversationId": "c1",
        "at": f"2026-01-01T00:00:{seq % 60:02d}.000Z",
    }
    event.update(changes)
    return event


def _one_at_a_time(events: list[dict[str, Any]], seen: RecentKeys) -> tuple[bytes, int, int]:
    lines, printed, cursor, _ = catchup._page(copy.deepcopy(events), seen, None, 7, None, -1)
    return lines, printed, cursor


def test_a_page_of_plain_messages_prints_what_one_event_at_a_time_prints() -> None:
    """The bulk path is taken for the log's usual page, and its lines, count and cursor are
    those of the per-event path, repeats of earlier keys left out as they are there."""
    events = [_message(seq) for seq in range(1, 41)]
    bulk_keys, single_keys = RecentKeys(size=25), RecentKeys(size=25)
    for keys in (bulk_keys, single_keys):
        keys.seen("m3")  # printed before: not again
    done = catchup._messages(copy.deepcopy(events), bulk_keys, 7)
    assert done is not None
    assert done == _one_at_a_time(events, single_keys)
    lines = done[0].split(b"\n")
    assert len(lines) == 39 and done[1] == 39 and done[2] == 40
    first = orjson.loads(lines[0])
    assert list(first) == ["type", "payload", "seq", "conversationId", "at"]
    assert first["payload"]["metadata"] == {} and first["seq"] == 1
    assert list(bulk_keys._keys.items()) == list(single_keys._keys.items())


@pytest.mark.parametrize(
    "odd",
    [
        {"data": {"id": "x", "metadata": '{"k": [1, 2]}'}},  # metadata to parse
        {"data": {"id": "x", "metadata": {"k": 1}}},  # metadata an object already
        {"data": {"id": "x"}},  # no metadata
        {"data": {"id": 5, "metadata": "{}"}},  # no string id
        {"type": "conversation.create", "data": {"id": "c9", "metadata": "{}"}},
        {"at": None, "extra": 1},
        {"seq": "12"},  # a seq that is no number: the cursor stays
    ],
)
def test_any_other_page_prints_as_before(odd: dict[str, Any]) -> None:
    """A page with one record off the usual shape goes one event at a time, unchanged."""
    events = [_message(seq) for seq in range(1, 6)]
    events.insert(2, _message(99, **odd))
    if "conversationId" in odd or "at" in odd:
        del events[2]["conversationId"]
    if "seq" not in odd:  # a seq of any kind is printed as it is, by either path
        assert catchup._messages(copy.deepcopy(events), RecentKeys(), 7) is None
    assert catchup._plain_page(copy.deepcopy(events), RecentKeys(), 7) == _one_at_a_time(
        events, RecentKeys()
    )


def test_a_page_with_a_key_twice_prints_it_once() -> None:
    events = [_message(1), _message(2), _message(3, data={"id": "m1", "metadata": "{}"})]
    lines, printed, cursor = catchup._plain_page(copy.deepcopy(events), RecentKeys(), 0)
    assert (printed, cursor) == (2, 3)
    assert (lines, printed, cursor) == _one_at_a_time(events, RecentKeys())


def test_news_remembers_as_seen_does_key_by_key() -> None:
    """RecentKeys.news: the same answers and the same memory (keys, serials, order) as seen()
    one key at a time, with repeats, forgetting and holding."""
    chooser = random.Random(21)
    bulk, single = RecentKeys(size=30), RecentKeys(size=30)
    for round_ in range(60):
        if round_ == 20:
            bulk.hold()
            single.hold()
        if round_ == 40:
            bulk.release()
            single.release()
        fresh = chooser.random() < 0.5
        keys = [
            f"k{round_}-{i}"
            if fresh
            else f"k{chooser.randrange(round_ + 1)}-{chooser.randrange(8)}"
            for i in range(chooser.randrange(1, 12))
        ]
        answer = bulk.news(list(keys))
        expected = [not single.seen(key) for key in keys]
        assert (answer if answer is not None else [True] * len(keys)) == expected
        assert list(bulk._keys.items()) == list(single._keys.items())
        assert list(bulk._order) == list(single._order) and bulk.added == single.added


class _Pages:
    """A stand-in for SyncReader: the given pages, then a failure (if any)."""

    step_limit = 1.0

    def __init__(self, pages: list[Page], failure: Exception | None = None) -> None:
        self._pages = pages
        self._failure = failure
        self.asked: list[int] = []

    def page(self, since: int) -> Page:
        self.asked.append(since)
        if self._pages:
            return self._pages.pop(0)
        assert self._failure is not None
        raise self._failure

    def wake(self) -> None:
        pass

    after = SyncReader.after  # the real paging rule, over these pages


def test_pages_read_ahead_come_in_order_then_the_failure() -> None:
    """Every page read before a failure is handed over first; the failure is raised where the
    next page would have been (a 401 here), and the reader was asked from each page's cursor."""
    pages = [Page([{"seq": n}], n, True) for n in (3, 4, 5)]
    reader = _Pages(pages, AuthError("the server rejected the token"))
    ahead = Ahead(reader, 2, Log(), 1.0)  # type: ignore[arg-type]
    got: list[Any] = []
    with pytest.raises(AuthError):
        for events in ahead:
            got.append(events[0]["seq"])
    ahead.close()
    assert got == [3, 4, 5]
    assert reader.asked == [2, 3, 4, 5]


def test_pages_read_ahead_end_at_the_last_page() -> None:
    reader = _Pages([Page([{"seq": 1}], 1, True), Page([{"seq": 2}], 2, False)])
    ahead = Ahead(reader, 0, Log(), 1.0)  # type: ignore[arg-type]
    assert [events[0]["seq"] for events in ahead] == [1, 2]
    ahead.close()
    assert reader.asked == [0, 1]


def test_closing_cuts_the_page_under_way(black_hole: BlackHole) -> None:
    """The catch-up ends (--count reached, a failure, a stop) while the next page is being read
    from a server that does not answer: close() cuts that page at once, not at its deadline."""
    endpoint = Endpoint(black_hole.url, "t0ken", timeouts=Timeouts(connect=30.0))
    reader = SyncReader(endpoint, Log())
    ahead = Ahead(reader, 0, Log(), 5.0)
    deadline = time.monotonic() + 5
    while black_hole.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # the request is written; the answer never comes
    start = time.monotonic()
    ahead.close()
    assert time.monotonic() - start < 2.0
    assert not any(t.name == "prismer-rt-log-ahead" for t in threading.enumerate())
    reader.close()
