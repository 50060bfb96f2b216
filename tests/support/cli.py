"""Run the real `prismer-rt` command in a subprocess, as a user's shell would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import websocket

# Fast timers so that reconnect and keepalive tests take a second, not a minute.
FAST = {
    "PRISMER_RT_BACKOFF_INITIAL": "0.05",
    "PRISMER_RT_BACKOFF_MAX": "0.4",
    "PRISMER_RT_CONNECT_TIMEOUT": "3",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[dict]:
        return [orjson.loads(line) for line in self.out.splitlines() if line.strip()]


def env_for(url: str | None = None, token: str | None = "alice", **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAST)
    if url is not None:
        env["PRISMER_URL"] = url
    if token is not None:
        env["PRISMER_TOKEN"] = token
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "prismer_cli", *args]


def run(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    timeout: float = 20,
) -> Result:
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        command(*args),
        input=data if data is not None else b"",
        capture_output=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


class Background:
    """A long-running `prismer-rt` (listen, subscribe) with helpers to read its output."""

    running: list[Background] = []

    def __init__(self, *args: str, env: Mapping[str, str], stdin: int | None = subprocess.DEVNULL):
        Background.running.append(self)
        self.proc = subprocess.Popen(
            command(*args),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
        )

    def wait(self, timeout: float = 20) -> Result:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(
                f"prismer-rt did not finish in {timeout} s; stderr: {err.decode()}"
            ) from None
        return Result(self.proc.returncode, out.decode(), err.decode())

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    @classmethod
    def reap(cls) -> None:
        """Kill and collect every process a test left running (a failed test, say)."""
        while cls.running:
            cls.running.pop().kill()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def user_id(token: str) -> str:
    """The stand-in server's user id for a token."""
    import hashlib

    return "usr_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def accepted_connections(log: list[dict]) -> list[dict]:
    """The server's records of WebSocket and SSE connections that it authenticated."""
    return [
        r
        for r in log
        if r["kind"] in ("ws_connect", "sse_connect")
        and r.get("status") in (101, 200)
        and r.get("auth", "ok") == "ok"
        and r.get("user")
    ]


def wait_for_connections(server, count: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until the server has authenticated `count` connections in all."""
    wait_until(lambda: len(accepted_connections(server.log())) >= count, timeout)


def frames_in(log: list[dict], conn: int | None = None) -> list[dict]:
    """The client frames the server received (on one connection, if given)."""
    return [
        r["frame"]
        for r in log
        if r["kind"] == "ws_frame_in" and "frame" in r and (conn is None or r.get("conn") == conn)
    ]


def join_conversations(server, token: str, *convs: str) -> None:  # type: ignore[no-untyped-def]
    """Make the token's user a participant of each conversation (server dialect; set-up)."""
    ws = websocket.create_connection(f"{server.ws_url}/ws?token={token}", timeout=5)
    try:
        ws.recv()  # authenticated
        for conv in convs:
            frame = {"type": "conversation.join", "payload": {"conversationId": conv}}
            ws.send(orjson.dumps(frame).decode())
        ws.send(orjson.dumps({"type": "ping", "payload": {}, "requestId": "sync"}).decode())
        while orjson.loads(ws.recv()).get("type") != "pong":
            pass
    finally:
        ws.close()
