"""Every recipe of the README's "jq recipes" runs, as written, against `prismer-rt serve`.

Each recipe is run by bash with the project's `prismer-rt` first on PATH; the only change is
that `--timeout` values are shortened so that the test takes seconds. A recipe this file does
not know fails the test, so a new recipe comes with its check.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import env_for, user_id, wait_for_connections, wait_until
from tests.support.serverfixture import ServerFactory, ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "recipe-token"
ME = user_id(TOKEN)

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None, reason="jq is not installed (.ci/run installs it)"
)


def recipes() -> dict[str, str]:
    """The recipes of the "jq recipes" section: each command, keyed by its comment's first line."""
    section = README.read_text().split("## jq recipes", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    found: dict[str, str] = {}
    for chunk in block.strip().split("\n\n"):
        lines = chunk.splitlines()
        title = lines[0].lstrip("# ")
        found[title] = "\n".join(line for line in lines if not line.startswith("#"))
    return found


class Recipe:
    """A recipe running in bash, its stdout a terminal (jq flushes each line only there), in a
    session of its own so that the whole pipeline can be stopped."""

    def __init__(self, script: str, server: ServerProcess, cwd: Path, timeout: str) -> None:
        script = re.sub(r"--timeout \d+", f"--timeout {timeout}", script)
        env = env_for(server.url, TOKEN)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        self._master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(slave)
        self._buffer = b""
        self._eof = False

    def _read(self, timeout: float) -> bool:
        """Read what the terminal has; False at end of output or when nothing came in time."""
        if self._eof or not select.select([self._master], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            chunk = b""
        self._eof = not chunk
        self._buffer += chunk
        return bool(chunk)

    def line(self, timeout: float = 10) -> str:
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            assert self._read(max(0.0, end - time.monotonic())), "no output in time"
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode().rstrip("\r")

    def wait(self, timeout: float = 20) -> tuple[int, str]:
        end = time.monotonic() + timeout
        while self._read(max(0.0, end - time.monotonic())):
            pass
        _, err = self.proc.communicate(timeout=max(0.1, end - time.monotonic()))
        assert b"Traceback" not in err, err
        os.close(self._master)
        return self.proc.returncode, self._buffer.decode().replace("\r\n", "\n")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.communicate(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self._master)


def message(server: ServerProcess, conversation: str, content: str, **extra: str) -> None:
    payload = {"id": f"m-{time.monotonic_ns()}", "conversationId": conversation}
    payload.update(content=content, senderId="usr_bob", **extra)
    server.emit("message.new", payload, to=ME)


def contents(server: ServerProcess, conversation: str) -> list[str]:
    return [m["content"] for m in server.messages(conversation)]


def check_contents(start: Callable[..., Recipe], server: ServerProcess) -> None:
    recipe = start()
    wait_for_connections(server, 1)
    message(server, "conv_1", "hello there")
    assert recipe.line() == "hello there"
    recipe.stop()


def check_who(start: Callable[..., Recipe], server: ServerProcess) -> None:
    recipe = start()
    wait_for_connections(server, 1)
    message(server, "conv_123", "hi", senderName="Bob")
    assert recipe.line() == "Bob: hi"
    recipe.stop()


def check_count(start: Callable[..., Recipe], server: ServerProcess) -> None:
    recipe = start(timeout="3")
    wait_for_connections(server, 1)
    message(server, "conv_1", "one")
    message(server, "conv_1", "two")
    server.emit("task.updated", {"taskId": "t9", "status": "running"}, to=ME)
    code, out = recipe.wait()
    assert code == 0
    assert sorted(line.split() for line in out.splitlines()) == [
        ["1", "task.updated"],
        ["2", "message.new"],
    ]


def check_wait(start: Callable[..., Recipe], server: ServerProcess) -> None:
    recipe = start(timeout="15")
    wait_for_connections(server, 1)
    server.emit("task.updated", {"taskId": "t2", "status": "done"}, to=ME)
    server.emit("task.updated", {"taskId": "t1", "status": "running"}, to=ME)
    server.emit("task.updated", {"taskId": "t1", "status": "done"}, to=ME)
    assert recipe.wait() == (0, "done\n")
    # The task never finishes: exit 124, and jq never runs.
    assert start(timeout="1").wait() == (124, "")


def check_auto_reply(start: Callable[..., Recipe], server: ServerProcess) -> None:
    recipe = start()
    wait_for_connections(server, 1)
    message(server, "conv_auto", "anyone there?")
    wait_until(lambda: contents(server, "conv_auto") == ["Message received!"], timeout=10)
    time.sleep(0.5)  # its own reply comes back as message.new: --ignore-self must not answer it
    assert contents(server, "conv_auto") == ["Message received!"]
    recipe.stop()


CHECKS: dict[str, Callable[[Callable[..., Recipe], ServerProcess], None]] = {
    "Message contents as plain text, as they arrive": check_contents,
    "Who is talking, in one conversation": check_who,
    "Count event types for a minute": check_count,
    "Wait (from cron or CI) for task t1 to finish, at most 10 minutes: exit 0 when it did,": (
        check_wait
    ),
    "The docs page's auto-reply as a pipeline. --ignore-self keeps it from answering its own": (
        check_auto_reply
    ),
}


def test_every_recipe_has_a_check() -> None:
    assert list(recipes()) == list(CHECKS)


@pytest.fixture
def recipe_server(server_factory: ServerFactory) -> Iterator[ServerProcess]:
    yield server_factory()  # the docs dialect, as `prismer-rt serve` starts


@pytest.mark.parametrize("title", list(CHECKS))
def test_readme_recipe_runs(title: str, recipe_server: ServerProcess, tmp_path: Path) -> None:
    script = recipes()[title]
    started: list[Recipe] = []

    def start(timeout: str = "3") -> Recipe:
        recipe = Recipe(script, recipe_server, tmp_path, timeout)
        started.append(recipe)
        return recipe

    try:
        CHECKS[title](start, recipe_server)
    finally:
        for recipe in started:
            if recipe.proc.poll() is None:
                recipe.stop()
