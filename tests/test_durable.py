"""listen --since, --cursor-file, --no-follow against the stand-in server's event log (issue 12)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cli import Background, env_for, run, user_id, wait_until
from tests.support.serverfixture import ServerFactory

DIALECTS = ["server", "docs"]
BOB = user_id("bob")


class Poster:
    """alice posts direct messages to bob over REST, numbered in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer alice"
        self.sent: list[str] = []

    def post_content(self, content: str) -> None:
        answer = self.session.post(
            f"{self.url}/api/im/direct/{BOB}/messages", json={"content": content}
        )
        assert answer.status_code == 201, answer.text
        self.sent.append(content)

    def post(self, n: int = 1, metadata: dict[str, Any] | None = None) -> None:
        for _ in range(n):
            content = f"m{len(self.sent) + 1}"
            body: dict[str, Any] = {"content": content}
            if metadata is not None:
                body["metadata"] = metadata
            answer = self.session.post(f"{self.url}/api/im/direct/{BOB}/messages", json=body)
            assert answer.status_code == 201, answer.text
            self.sent.append(content)


def contents(out: str) -> list[str]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [line["payload"]["content"] for line in lines if line["type"] == "message.new"]


def listen(url: str, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    result = run("listen", *args, env=env_for(url, "bob"), timeout=timeout)
    return result.code, result.out, result.err


@pytest.mark.parametrize("dialect", DIALECTS)
def test_five_cron_runs_print_every_message_once_in_order(
    server_factory: ServerFactory, tmp_path: Path, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    poster = Poster(server.url)
    cursor = str(tmp_path / "state" / "deep" / "inbox.cursor")
    outputs: list[str] = []
    poster.post(3)  # before the first run: --since all starts at the beginning
    code, out, err = listen(server.url, "--cursor-file", cursor, "--since", "all", "--no-follow")
    assert code == 0, err
    outputs.append(out)
    poster.post(2)  # between runs
    for i in range(2):  # live runs, with messages during and between them
        run_ = Background(
            "listen", "--cursor-file", cursor, "--timeout", "2.5", env=env_for(server.url, "bob")
        )
        wait_until(
            lambda: any(
                r["kind"] == "sse_connect" or r["kind"] == "ws_connect" for r in server.log()[-5:]
            ),
            timeout=10,
        )
        poster.post(2)
        result = run_.wait()
        assert result.code == 0, result.err
        outputs.append(result.out)
        poster.post(1 + i)
    code, out, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert code == 0, err
    outputs.append(out)
    poster.post(2)
    code, out, err = listen(server.url, "--cursor-file", cursor, "--no-follow", "--timeout", "5")
    assert code == 0, err
    outputs.append(out)
    printed = [c for out in outputs for c in contents(out)]
    assert printed == poster.sent
    saved = json.loads(Path(cursor).read_text())
    assert (
        saved["server"] == server.url
        and saved["user"] == BOB
        and "alice" not in Path(cursor).read_text()
    )
    assert Path(cursor).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_sigkilled_run_loses_nothing(
    server_factory: ServerFactory, tmp_path: Path, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    poster = Poster(server.url)
    cursor = str(tmp_path / "inbox.cursor")
    poster.post(2)
    code, first, err = listen(server.url, "--cursor-file", cursor, "--since", "all", "--no-follow")
    assert code == 0, err
    live = Background("listen", "--cursor-file", cursor, env=env_for(server.url, "bob"))
    wait_until(lambda: contents(first) and Path(cursor).exists())
    wait_until(lambda: len([r for r in server.log() if "connect" in r["kind"]]) >= 1)
    poster.post(3)
    time.sleep(1.0)  # printed live, maybe saved, maybe not
    live.proc.kill()
    killed = live.wait()
    poster.post(2)
    code, last, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert code == 0, err
    printed = contents(first) + contents(killed.out) + contents(last)
    assert set(printed) == set(poster.sent)  # at least once: nothing lost
    assert contents(last)[-2:] == poster.sent[-2:]
    assert contents(first) + contents(killed.out) == poster.sent[:5]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_cursor_is_saved_on_a_signal(
    server_factory: ServerFactory, tmp_path: Path, signum: int
) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    poster = Poster(server.url)
    cursor = str(tmp_path / "inbox.cursor")
    live = Background("listen", "--cursor-file", cursor, env=env_for(server.url, "bob"))
    wait_until(lambda: Path(cursor).exists())
    wait_until(lambda: any(r["kind"] == "ws_connect" for r in server.log()))
    poster.post(3)  # also logs conversation.create, which this dialect does not push live
    time.sleep(1.0)
    live.interrupt(signum)
    result = live.wait()
    assert result.code == (143 if signum == signal.SIGTERM else 130)
    assert contents(result.out) == poster.sent
    assert '"conversation.create"' in result.out  # printed from the log at exit
    assert json.loads(Path(cursor).read_text())["cursor"] == server.sync_head()
    code, out, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert (code, out) == (0, ""), err


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_seam_no_gap_no_duplicate(server_factory: ServerFactory, dialect: str) -> None:
    """Messages posted while the catch-up reads three pages appear exactly once."""
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    poster = Poster(server.url)
    poster.post(1200)
    during = threading.Thread(target=poster.post, args=(40,))
    live = Background("listen", "--since", "all", "--timeout", "6", env=env_for(server.url, "bob"))
    during.start()
    during.join()
    result = live.wait()
    assert result.code == 0, result.err
    assert contents(result.out) == poster.sent


def test_two_runs_on_one_cursor_file(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    poster = Poster(server.url)
    poster.post(2)
    cursor = str(tmp_path / "inbox.cursor")
    first = Background(
        "listen",
        "--cursor-file",
        cursor,
        "--since",
        "all",
        "--timeout",
        "3",
        env=env_for(server.url, "bob"),
    )
    wait_until(lambda: Path(cursor).exists())
    code, out, err = listen(server.url, "--cursor-file", cursor, "--since", "all", "--no-follow")
    assert code == 75 and out == ""  # EX_TEMPFAIL: it passes by itself (not 2: "fix the config")
    assert f"another listen holds {cursor}" in err
    result = first.wait()
    assert contents(result.out) == poster.sent


def test_paging_past_500_and_the_duplicate_conversation_create(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    poster = Poster(server.url)
    poster.post(1100, metadata={"k": "v"})
    page = requests.get(
        f"{server.url}/api/im/sync",
        params={"since": 0, "limit": 500},
        headers={"Authorization": "Bearer bob"},
    ).json()["data"]
    assert page["hasMore"] and len(page["events"]) == 500
    creates = [e for e in page["events"] if e["type"] == "conversation.create"]
    assert len(creates) == 2  # written once per participant
    code, out, err = listen(server.url, "--since", "all", "--no-follow")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines].count("conversation.create") == 1
    assert contents(out) == poster.sent
    assert lines[1]["payload"]["metadata"] == {"k": "v"}  # an object, not the log's string
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs) and seqs[-1] == server.sync_head()
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", "--type", "message.new", "--count", "600"
    )
    assert code == 0 and contents(out) == poster.sent[:600]


def test_filters_and_meta_apply_to_stored_events(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    poster = Poster(server.url)
    poster.post(2)
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", "--type", "conversation.create", "--meta"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["conversation.create", "prismer-rt.caught-up"]
    assert lines[-1]["payload"]["cursor"] == server.sync_head()
    code, out, _err = listen(server.url, "--since", "all", "--no-follow", "--conversation", "x")
    assert (code, out) == (0, "")


def test_every_filter_applies_to_stored_events_as_to_live_ones(
    server_factory: ServerFactory,
) -> None:
    """--match, --conversation, --type and --ignore-self are one filter for stored and live
    events: --match is not ignored for stored ones (the cron form of "wait for a task" saw an
    unrelated task and exited 0), and --conversation C keeps C's own conversation.create, whose
    conversation is the log record's conversationId and payload.id. A stored event keeps the
    record's conversationId and at."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    poster = Poster(server.url)
    for content in ["pear", "apple", "plum", "fig", "kiwi"]:
        poster.post_content(content)
    server.emit("task.notification", {"taskId": "t2", "status": "failed"}, to=BOB)
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", "--match", "payload.content=apple"
    )
    assert code == 0, err
    [apple] = _lines(out)
    conversation = apple["payload"]["conversationId"]
    assert apple["payload"]["content"] == "apple" and apple["conversationId"] == conversation
    assert isinstance(apple["at"], str) and isinstance(apple["seq"], int)
    wait_for_t1 = ("--match", "payload.taskId=t1", "--match", "payload.status=done")
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", *wait_for_t1, "--count", "1"
    )
    assert (code, out) == (124, ""), err  # t1 did not finish: not reported as done
    server.emit("task.notification", {"taskId": "t1", "status": "done"}, to=BOB)
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", *wait_for_t1, "--count", "1"
    )
    assert code == 0 and [line["payload"]["taskId"] for line in _lines(out)] == ["t1"], err
    code, out, err = listen(
        server.url, "--since", "all", "--no-follow", "--conversation", conversation
    )
    assert code == 0, err
    assert _kinds(out) == ["conversation.create"] + ["message.new"] * 5
    assert _lines(out)[0]["payload"]["id"] == conversation == _lines(out)[0]["conversationId"]
    mine = run(
        "listen", "--since", "all", "--no-follow", "--ignore-self", "--type", "message.new",
        env=env_for(server.url, "alice"),
    )  # fmt: skip
    assert (mine.code, mine.out) == (0, ""), mine.err


def test_no_history_is_a_usage_error(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"], faults=["no-history"])
    code, out, err = listen(server.url, "--since", "all", "--timeout", "2")
    assert code == 2 and out == ""
    assert "keeps no event history" in err


def test_a_cursor_belongs_to_one_server_and_user(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    one = server_factory(dialect="server", tokens=["alice", "bob"])
    other = server_factory(dialect="server", tokens=["alice", "bob"])
    Poster(one.url).post(2)
    cursor = str(tmp_path / "c")
    assert listen(one.url, "--cursor-file", cursor, "--since", "all", "--no-follow")[0] == 0
    code, _out, err = listen(other.url, "--cursor-file", cursor, "--no-follow")
    assert code == 2 and "belongs to another server" in err
    result = run("listen", "--cursor-file", cursor, "--no-follow", env=env_for(one.url, "alice"))
    assert result.code == 2 and "belongs to another user" in result.err
    assert "alice" not in result.err.replace(user_id("alice"), "")


def test_a_cursor_past_the_head_is_reported(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    Poster(server.url).post(2)
    code, out, err = listen(server.url, "--since", "99999", "--no-follow")
    assert code == 2 and out == ""
    assert code == 2 and "past the newest event" in err and f"seq {server.sync_head()}" in err
    code, _out, err = listen(server.url, "--since", "1x", "--no-follow")
    assert code == 2 and "--since takes a seq" in err


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _kinds(out: str) -> list[str]:
    return [line["type"] for line in _lines(out)]


def test_docs_live_run_prints_what_the_stream_skipped(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The docs dialect's stream does not carry the log's conversation.create (its ids jump):
    a live --cursor-file run reads the skipped seqs from the log, prints them first, with seq,
    and no event prints twice across runs (QA F1)."""
    server = server_factory(dialect="docs", tokens=["alice", "bob"])
    poster = Poster(server.url)
    cursor = str(tmp_path / "inbox.cursor")
    code, first, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert (code, first) == (0, ""), err
    poster.post(1)  # between runs: creates the conversation (logged, not on the stream)
    code, live, err = listen(server.url, "--cursor-file", cursor, "--timeout", "2")
    assert code == 0, err
    assert _kinds(live) == ["conversation.create", "message.new"]
    stored = _lines(live)[0]
    assert stored["seq"] == 1  # a stored event: with its seq, as every stored event
    poster.post(1)
    code, last, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert code == 0, err
    union = first + live + last
    assert _kinds(union).count("conversation.create") == 1
    assert contents(union) == poster.sent
    assert json.loads(Path(cursor).read_text())["cursor"] == server.sync_head()


def test_docs_live_gap_while_running_and_since_all(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A gap in the ids of events arriving live is filled from the log before the live event;
    --since all live prints the log's conversation.create too."""
    server = server_factory(dialect="docs", tokens=["alice", "bob"])
    poster = Poster(server.url)
    cursor = str(tmp_path / "inbox.cursor")
    run_ = Background(
        "listen", "--cursor-file", cursor, "--timeout", "3", env=env_for(server.url, "bob")
    )
    wait_until(lambda: any(r["kind"] == "sse_connect" for r in server.log()), timeout=10)
    poster.post(2)  # the first creates the conversation while the run is live
    result = run_.wait()
    assert result.code == 0, result.err
    assert _kinds(result.out) == ["conversation.create", "message.new", "message.new"]
    assert contents(result.out) == poster.sent
    code, out, err = listen(server.url, "--cursor-file", cursor, "--no-follow")
    assert (code, out) == (0, ""), err
    code, out, err = listen(server.url, "--since", "all", "--timeout", "2")
    assert code == 0, err
    assert _kinds(out) == ["conversation.create", "message.new", "message.new"]
    code, out, err = listen(server.url, "--since", "all", "--timeout", "2", "--count", "1")
    assert code == 0 and _kinds(out) == ["conversation.create"], err


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_cursor_file_never_records_a_null_dialect(
    server_factory: ServerFactory, tmp_path: Path, dialect: str
) -> None:
    server = server_factory(dialect=dialect, tokens=["alice", "bob"])
    cursor = tmp_path / "inbox.cursor"
    code, _out, err = listen(server.url, "--cursor-file", str(cursor), "--no-follow")
    assert code == 0, err
    saved = json.loads(cursor.read_text())
    assert saved.get("dialect", "absent") is not None
    code, _out, err = listen(server.url, "--cursor-file", str(cursor), "--timeout", "1")
    assert code == 0, err
    assert json.loads(cursor.read_text())["dialect"] == dialect
    code, _out, err = listen(
        server.url, "--cursor-file", str(cursor), "--no-follow", "--dialect", dialect
    )
    assert code == 0, err
    assert json.loads(cursor.read_text())["dialect"] == dialect
