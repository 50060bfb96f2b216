"""The event log's pages over a kept-alive socket of the client's own (transport/keepalive.py)
instead of requests: the same request, the same lines printed however the answer is framed,
coded or cut, and what it does not read (a redirect, a cookie) handed to requests. The real
command against the stand-in server, through a relay that reshapes its answers
(tests/support/reshape.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from prismer_cli.listen.eventlog import SyncReader
from prismer_cli.log import Log
from prismer_cli.transport.base import Endpoint
from prismer_cli.transport.keepalive import plain
from tests.support.cli import Result, env_for, run, user_id
from tests.support.reshape import MODES, Reshaper
from tests.support.serverfixture import ServerProcess, running_server

BOB = "bob"
POSTED = 600  # two pages of the log (500 a page), and its conversation.create


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("keepalive")
    with running_server(home, dialect="server", tokens=["alice", "bob"]) as started:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer alice"
        bob = user_id("bob")
        for number in range(POSTED):
            answer = session.post(
                f"{started.url}/api/im/direct/{bob}/messages", json={"content": f"m{number}"}
            )
            assert answer.status_code == 201, answer.text
        yield started


def catch_up(url: str, *extra: str) -> Result:
    return run("listen", "--since", "all", "--no-follow", *extra, env=env_for(url, BOB))


@pytest.fixture(scope="module")
def through_requests(server: ServerProcess) -> Result:
    """What the catch-up prints when requests reads the log (--trace keeps it there)."""
    result = catch_up(server.url, "--trace")
    assert result.code == 0, result.err[-2000:]
    assert result.out.count('"message.new"') == POSTED
    return result


def sync_requests(relay: Reshaper) -> list[tuple[int, list[str]]]:
    """The log's requests as the relay saw them: (connection, the head's lines)."""
    return [
        (number, head.decode().rstrip("\r\n").split("\r\n"))
        for number, head in relay.requests
        if b"/api/im/sync?" in head
    ]


SPECIAL = ("cut", "drops-the-second", "hangs-after-the-first")


@pytest.mark.parametrize("mode", [m for m in MODES if m not in SPECIAL])
def test_every_framing_prints_what_requests_prints(
    server: ServerProcess, through_requests: Result, mode: str
) -> None:
    with Reshaper(server.port, mode) as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err[-2000:]
    assert result.out == through_requests.out
    assert len(sync_requests(relay)) >= 2


def test_the_pages_share_one_connection(server: ServerProcess) -> None:
    with Reshaper(server.port, "as-is") as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err
    per_connection = Counter(number for number, _ in sync_requests(relay))
    assert max(per_connection.values()) >= 2, per_connection  # both pages, one connection


def test_a_connection_the_server_closed_when_idle_is_opened_again(server: ServerProcess) -> None:
    with Reshaper(server.port, "closed-when-idle") as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err
    per_connection = Counter(number for number, _ in sync_requests(relay))
    assert set(per_connection.values()) == {1}
    assert "retrying" not in result.err and "cannot" not in result.err


def test_a_kept_connection_closed_as_the_request_went_is_asked_again_anew(
    server: ServerProcess,
) -> None:
    with Reshaper(server.port, "drops-the-second") as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err
    per_connection = Counter(number for number, _ in sync_requests(relay))
    assert 2 in per_connection.values()  # the second went unanswered, and was asked again
    assert "retrying" not in result.err and "cannot" not in result.err


def test_a_page_cut_at_its_deadline_is_not_asked_again(server: ServerProcess) -> None:
    """The watchdog shuts the kept socket of a page the server never answers when --timeout
    comes; that is the end of it, not a connection the server closed (asked again, on a new
    socket that no deadline would cut)."""
    with Reshaper(server.port, "hangs-after-the-first") as relay:
        result = catch_up(relay.url, "--timeout", "2")
        connections = {number for number, _ in sync_requests(relay)}
    assert result.code == 0, result.err  # --no-follow: --timeout ends it
    assert len(connections) == 1, connections


def test_the_request_is_the_one_requests_writes(server: ServerProcess) -> None:
    with Reshaper(server.port, "as-is") as relay:
        assert catch_up(relay.url).code == 0
        ours = sync_requests(relay)
        assert catch_up(relay.url, "--trace").code == 0
        theirs = sync_requests(relay)[len(ours) :]
    first = "GET /api/im/sync?since=0&limit=500 HTTP/1.1"
    ours_first = next(lines for _, lines in ours if lines[0] == first)
    theirs_first = next(lines for _, lines in theirs if lines[0] == first)
    assert sorted(ours_first) == sorted(theirs_first)
    assert [lines[0] for _, lines in ours] == [lines[0] for _, lines in theirs]


def test_a_cookie_hands_the_pages_to_requests_which_sends_it_back(server: ServerProcess) -> None:
    with Reshaper(server.port, "cookie") as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err
    heads = [lines for _, lines in sync_requests(relay)]
    assert "Cookie: lb=one" not in heads[0]
    assert "Cookie: lb=one" in heads[-1]


def test_a_redirect_is_followed_by_requests(server: ServerProcess) -> None:
    with Reshaper(server.port, "redirect") as relay:
        result = catch_up(relay.url)
    assert result.code == 0, result.err
    paths = [lines[0].split(" ")[1] for _, lines in sync_requests(relay)]
    assert "/moved/api/im/sync?since=0&limit=500" in paths, paths


def test_an_answer_cut_short_is_a_failure_said_plainly(server: ServerProcess) -> None:
    with Reshaper(server.port, "cut") as relay:
        result = catch_up(relay.url)
    assert result.code == 4
    assert "cannot read the event log: connection closed by the peer mid-response" in result.err
    assert "Traceback" not in result.err and "bob" not in result.err


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("http://127.0.0.1:8080/api/im/sync", {}, True),
        ("https://127.0.0.1/api/im/sync", {}, False),
        ("http://127.0.0.1:8080/api/im/sync", {"http_proxy": "http://proxy:3128"}, False),
        (
            "http://127.0.0.1:8080/api/im/sync",
            {"http_proxy": "http://proxy:3128", "no_proxy": "127.0.0.1"},
            True,
        ),
        ("http://127.0.0.1:8080/api/im/sync", {"https_proxy": "http://proxy:3128"}, True),
        ("http://b\u00fccher.example/api/im/sync", {}, False),
    ],
)
def test_the_plain_case_is_what_requests_would_send_directly(
    monkeypatch: pytest.MonkeyPatch, url: str, environ: dict[str, str], expected: bool
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert plain(url) is expected


def test_the_next_page_is_asked_for_before_this_one_prints(server: ServerProcess) -> None:
    """--count 5 ends within the first page; the second was asked for already (read ahead),
    and its answer, never read, goes with its connection."""
    with Reshaper(server.port, "as-is") as relay:
        result = catch_up(relay.url, "--count", "5")
    assert result.code == 0, result.err
    assert result.out.count("\n") == 5
    queries = [lines[0].split(" ")[1] for _, lines in sync_requests(relay)]
    assert queries[-2] == "/api/im/sync?since=0&limit=500"
    assert queries[-1].startswith("/api/im/sync?since=") and queries[-1] != queries[-2]


def test_an_answer_asked_for_is_never_taken_for_another_page(server: ServerProcess) -> None:
    """A page asked ahead and then not wanted: the page read instead is the one asked for
    (its connection had the other answer coming: a new one is opened)."""
    reader = SyncReader(Endpoint(server.url, BOB), Log())
    try:
        first = reader.page(0, 3)
        reader.ask_ahead(first.cursor)
        again = reader.page(0, 3)
        assert [e["seq"] for e in again.events] == [e["seq"] for e in first.events]
        after = reader.page(first.cursor, 3)  # and the connection after that serves as ever
        assert after.events[0]["seq"] > first.cursor
    finally:
        reader.close()
