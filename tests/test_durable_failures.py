"""A durable listen when things go wrong (issue 17 item 7): a cursor file that cannot be saved,
through the real command against `prismer-rt serve`."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.cli import Background, command, env_for, run, user_id, wait_until
from tests.support.serverfixture import ServerFactory

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
