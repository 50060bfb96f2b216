"""A durable listen when things go wrong (issue 17 items 7 and 9, issue 18 item 4): a cursor file
that cannot be saved, --timeout during a catch-up, an event log that fails during a reconnect,
and a busy server whose seqs are mostly other users', through the real command against
`prismer-rt serve`."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.cli import Background, command, env_for, run, user_id, wait_until
from tests.support.serverfixture import ServerFactory, ServerProcess
from tests.support.slowreader import slowly_read
from tests.test_durable_once import join, send

BOB = user_id("bob")


def post(url: str, *contents: str) -> None:
    """alice says each content to bob, over REST."""
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer alice"
        for content in contents:
            answer = session.post(f"{url}/api/im/direct/{BOB}/messages", json={"content": content})
            assert answer.status_code == 201, answer.text


def no_file_writes() -> None:
    """In the child: no regular file may grow past 0 bytes (a full disk, without root tricks:
    writes fail with EFBIG; Python ignores SIGXFSZ)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_a_cursor_that_cannot_be_saved_fails_before_anything_prints(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A new cursor file, and one that holds a cursor already: exit 75 with the reason, and not
    a line printed (the events would otherwise print again at every run)."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    post(server.url, "one", "two")
    cursor = str(tmp_path / "bob.cursor")
    durable = ("listen", "--cursor-file", cursor, "--since", "all", "--no-follow")
    env = env_for(server.url, "bob")
    for round_ in ("a new file", "a saved cursor"):
        full = subprocess.run(
            command(*durable), env=env, capture_output=True, timeout=20, preexec_fn=no_file_writes
        )
        err = full.stderr.decode()
        assert (full.returncode, full.stdout) == (75, b""), (round_, err)
        assert f"cannot save the cursor to {cursor}: File too large" in err
        assert "unexpected" not in err
        first = run(*durable, "--count", "1", env=env)  # saves the cursor after one event
        assert first.code == 0, first.err


def test_a_live_listen_says_when_its_saves_fail_and_exits_75_on_sigterm(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    cursor = tmp_path / "bob.cursor"
    live = Background("listen", "--cursor-file", str(cursor), env=env_for(server.url, "bob"))
    wait_until(lambda: cursor.exists())
    wait_until(lambda: any(r["kind"] == "ws_connect" for r in server.log()))
    post(server.url, "saved")
    time.sleep(0.6)  # the log says the conversation.create, unpushed, comes before it
    post(server.url, "saved too")  # it prints with this one
    wait_until(lambda: json.loads(cursor.read_text())["cursor"] == server.sync_head())
    resource.prlimit(live.proc.pid, resource.RLIMIT_FSIZE, (0, 0))  # the disk is full now
    post(server.url, "not saved")
    time.sleep(1.0)  # printed; its save fails
    live.interrupt(signal.SIGTERM)
    result = live.wait()
    printed = [e["payload"]["content"] for e in result.lines if "content" in e["payload"]]
    assert printed == ["saved", "saved too", "not saved"]
    assert result.code == 75, result.err
    assert f"warning: cannot save the cursor to {cursor}: File too large" in result.err
    assert "unexpected" not in result.err


def test_timeout_during_a_catch_up_is_a_normal_end(server_factory: ServerFactory) -> None:
    """--timeout while the log is still being read: exit 0, or 124 with --count, as any other
    end by --timeout (it was 4, "never connected"); --no-follow as well."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    join(server, "alice", "bob")
    send(server, "m", 3000)
    env = env_for(server.url, "bob")
    for args, status in [
        (("--timeout", "1.5"), 0),
        (("--timeout", "1.5", "--count", "5000"), 124),
        (("--timeout", "1.5", "--no-follow"), 0),
    ]:
        with slowly_read(env, "listen", "--since", "all", *args) as (proc, reader):
            reader.pause = 0.05  # some 500 lines a second: the log is not read by --timeout
            assert proc.wait(timeout=20) == status, args
            assert proc.stderr is not None and b"never" not in proc.stderr.read()
        assert 0 < reader.lines() < 3000


def refused_pages(server: ServerProcess) -> list[dict[str, object]]:
    return [r for r in server.log() if is_page(r) and r.get("status") == 404]


def is_page(record: dict[str, object]) -> bool:
    return record["kind"] == "rest" and str(record.get("path", "")).startswith("/api/im/sync")


def test_the_log_failing_during_a_reconnect_is_retried(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A long-running durable listen whose connection drops while the event log answers 404:
    said on stderr and retried like any failed connection (it was exit 2, which a unit's
    RestartPreventExitStatus=2 keeps down); once the log answers, what was missed prints."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    cursor = str(tmp_path / "bob.cursor")
    live = Background(
        "listen", "--cursor-file", cursor, "--timeout", "4", env=env_for(server.url, "bob")
    )
    wait_until(lambda: any(r["kind"] == "ws_connect" for r in server.log()))
    server.set_faults(["no-history", "drop-after=0"])
    server.emit("task.notification", {"taskId": "t-missed"}, to=BOB)  # logged; drops the socket
    wait_until(lambda: len(refused_pages(server)) >= 2)
    server.set_faults([])
    result = live.wait(timeout=20)
    assert result.code == 0, result.err
    assert "the event log answered HTTP 404; retrying" in result.err
    assert "cannot be used" not in result.err
    assert [e["payload"]["taskId"] for e in result.lines] == ["t-missed"]


def test_the_log_refusing_at_the_start_is_tried_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A durable listen whose first look-ups meet 429s (the soak saw exit 4 there): said on
    stderr and tried again, honouring Retry-After, as a failed connection is; then the stored
    event prints and the run ends as asked."""
    server = server_factory(dialect="server", tokens=["alice", "bob"])
    server.emit("task.notification", {"taskId": "t-stored"}, to=BOB)
    server.set_faults(["rate-limit=3:1"])
    cursor = str(tmp_path / "bob.cursor")
    result = run(
        "listen", "--cursor-file", cursor, "--since", "all", "--count", "1", "--timeout", "20",
        env=env_for(server.url, "bob"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert [e["payload"]["taskId"] for e in result.lines] == ["t-stored"]
    assert "the event log answered HTTP 429; trying again in" in result.err
    assert "Traceback" not in result.err


def test_docs_gap_look_ups_are_one_a_second_on_a_busy_server(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """19 of every 20 seqs are other users' events (foreign-seqs=19): each live event's id skips
    seqs, yet the log is read for skipped ones at most once a second, and nothing is lost: the
    direct conversation's conversation.create (which the stream leaves out) prints once."""
    server = server_factory(dialect="docs", tokens=["alice", "bob"], faults=["foreign-seqs=19"])
    cursor = str(tmp_path / "bob.cursor")
    live = Background(
        "listen", "--cursor-file", cursor, "--timeout", "4", env=env_for(server.url, "bob")
    )
    wait_until(lambda: any(r["kind"] == "sse_connect" for r in server.log()))
    started = time.monotonic()
    sent = [f"m{i}" for i in range(40)]
    for content in sent:
        post(server.url, content)
        time.sleep(0.05)
    result = live.wait()
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    assert [e["type"] for e in result.lines].count("conversation.create") == 1
    assert [e["payload"]["content"] for e in result.lines if e["type"] == "message.new"] == sent
    log = server.log()
    connected = next(r["t"] for r in log if r["kind"] == "sse_connect")
    lookups = [r for r in log if is_page(r) and r["t"] > connected]
    assert len(lookups) <= elapsed + 2, (len(lookups), elapsed)  # one a second, one at exit
    code = run("listen", "--cursor-file", cursor, "--no-follow", env=env_for(server.url, "bob"))
    assert (code.code, code.out) == (0, ""), code.err
