"""--exec CMD: one `sh -c CMD` per event, the event's line on its stdin and in its environment.

The command's stdout and stderr go to prismer-rt's stderr (stdout stays the event stream). It
runs in a session of its own, so a Ctrl-C at the terminal reaches prismer-rt, which ends it;
past --exec-timeout (or the run's --timeout) it gets SIGTERM, then SIGKILL a second later.
The token is never in its environment: the variables that give it are removed, and so is any
variable whose value holds it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from prismer_cli import signals
from prismer_cli.handoff.deliver import Outcome
from prismer_cli.retry import Deadline

TOKEN_VARIABLES = ("PRISMER_TOKEN", "AGENT_TOKEN", "PRISMER_TOKEN_FILE")
EVENT_VARIABLES = (
    "PRISMER_EVENT_TYPE",
    "PRISMER_CONVERSATION_ID",
    "PRISMER_MESSAGE_ID",
    "PRISMER_SENDER_ID",
    "PRISMER_SEQ",
    "PRISMER_EVENT",
)
KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL


def event_environment(frame: dict[str, Any], line: bytes) -> dict[str, str]:
    """The PRISMER_* variables of one event, each only where the event says it."""
    payload = frame.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    kind = frame.get("type")
    message_id = payload.get("messageId")
    if not isinstance(message_id, str) and isinstance(kind, str) and kind.startswith("message."):
        message_id = payload.get("id")
    seq = frame.get("seq")
    values = {
        "PRISMER_EVENT_TYPE": kind,
        "PRISMER_CONVERSATION_ID": payload.get("conversationId"),
        "PRISMER_MESSAGE_ID": message_id,
        "PRISMER_SENDER_ID": payload.get("senderId"),
        "PRISMER_SEQ": str(seq) if type(seq) is int else None,
        "PRISMER_EVENT": line.decode("utf-8", "replace"),
    }
    return {k: v for k, v in values.items() if isinstance(v, str) and "\0" not in v}


def command_environment(
    base: Mapping[str, str], token: str, event: dict[str, str]
) -> dict[str, str]:
    """`base` without the token (its variables, and any value that holds it) and without
    another event's variables, plus this event's."""
    env = {
        k: v
        for k, v in base.items()
        if k not in TOKEN_VARIABLES and k not in EVENT_VARIABLES and not (token and token in v)
    }
    env.update(event)
    return env


class Executor:
    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout  # --exec-timeout

    def run(self, line: bytes, env: dict[str, str], deadline: Deadline) -> Outcome:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                ["sh", "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=_stderr_fd(),
                stderr=_stderr_fd(),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(False, None, _ms_since(started), f"cannot run sh: {exc.strerror}")
        limit = deadline.cut(self.timeout)
        try:
            if not _wait(proc, line + b"\n", limit):
                _end(proc)
                return Outcome(False, None, _ms_since(started), f"timed out after {limit:g} s")
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C, SIGTERM): the command ends too
                _end(proc)
        ms = _ms_since(started)
        code = proc.returncode
        if code < 0:
            return Outcome(False, None, ms, f"killed by {_signal_name(-code)}")
        return Outcome(code == 0, code, ms, f"exit {code}")


STOP_CHECK = 0.25  # how often a stop (SIGINT, SIGTERM in listen: signals.py) is looked for


def _wait(proc: subprocess.Popen[bytes], data: bytes, limit: float) -> bool:
    """Hand the command its line and wait for it, `limit` s at most (False when it is still
    running); a stop is raised (signals.check) within STOP_CHECK of coming."""
    end = time.monotonic() + limit
    first = True
    while True:
        try:
            proc.communicate(data if first else None, timeout=min(STOP_CHECK, limit))
            return True
        except subprocess.TimeoutExpired:
            first = False
            signals.check()
            limit = end - time.monotonic()
            if limit <= 0:
                return False


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group, SIGKILL after KILL_GRACE, then reap it."""
    for signum, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
