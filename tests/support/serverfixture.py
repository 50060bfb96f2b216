"""Run the project's own stand-in server (``python -m prismer_cli.server``) for tests.

    from tests.support.serverfixture import server_factory  # a pytest fixture

    def test_something(server_factory):
        server = server_factory(dialect="server", tokens=["alice=Alice"])
        ws = websocket.create_connection(server.ws_url + "/ws?token=alice")
        ...
        server.emit("task.updated", {"taskId": "t1", "status": "done"})
        assert any(r["kind"] == "ws_connect" for r in server.log())

The server is a real subprocess on a free loopback port, started with HOME and
XDG_CONFIG_HOME in a temporary folder; :func:`start_server` waits (at most 10 s) for its
listening line, and every server a test started is stopped after it. Timers
(``auth_timeout``, ``ack_timeout``, ``heartbeat``, ``token_ttl``) can be shortened to keep
tests fast, and ``max_message_bytes`` lowered.

``server.restart()`` kills the process (SIGKILL, or SIGTERM with ``kill=False``) and starts a
new one with the same options on the same port: a new process, so nothing in memory survives
(users of ``--token`` values stay the same; ackIds start from ``ack_1`` again).

The ``black_hole`` fixture is a loopback listener that accepts TCP connections and never reads
or answers anything, for deadline tests: ``black_hole.url`` (``http://127.0.0.1:PORT``),
``black_hole.accepted`` (connections so far).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://\S+) \(dialect (\w+)\)")
START_TIMEOUT = 30.0  # a bound, not a wait: generous for a loaded machine with coverage
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0


class ServerStartError(RuntimeError):
    """The server exited or stayed silent instead of listening."""


class _StderrReader(threading.Thread):
    """Collects the server's stderr lines and notices the listening line."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.lines: list[str] = []
        self.url: str | None = None
        self.listening = threading.Event()

    def run(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match and self.url is None:
                self.url = match.group(1)
                self.listening.set()
        self.listening.set()  # EOF: the process is gone


def _launch(home: Path, options: dict[str, Any]) -> tuple[subprocess.Popen[str], _StderrReader]:
    """Start a server process and wait (at most START_TIMEOUT) for its listening line."""
    process = subprocess.Popen(
        server_command(**options),
        cwd=REPO_ROOT,
        env=server_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    reader = _StderrReader(process.stderr)
    reader.start()
    reader.listening.wait(START_TIMEOUT)
    return process, reader


class ServerProcess:
    """A running stand-in server and helpers to drive its ``/_control`` endpoints."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        reader: _StderrReader,
        dialect: str,
        home: Path | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.process = process
        self.dialect = dialect
        self._reader = reader
        self._home = home
        self._options = dict(options or {})
        self._earlier_stderr: list[str] = []
        url = reader.url or ""
        self.url = url  # http://127.0.0.1:PORT
        self.ws_url = "ws" + url[len("http") :]  # ws://127.0.0.1:PORT
        self.port = int(url.rsplit(":", 1)[1]) if url else 0

    @property
    def stderr(self) -> str:
        """Everything the server printed, earlier processes of :meth:`restart` included."""
        return "\n".join([*self._earlier_stderr, *self._reader.lines])

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """``GET /_control/messages``: what the server stored in a conversation, oldest first."""
        response = requests.get(
            self.url + "/_control/messages",
            params={"conversationId": conversation_id},
            timeout=HTTP_TIMEOUT,
        )
        response.raise_for_status()
        stored: list[dict[str, Any]] = response.json()["messages"]
        return stored

    def kill(self) -> None:
        """SIGKILL: the process ends at once, its sockets are reset by the kernel."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT)

    def restart(self, *, kill: bool = True) -> None:
        """Stop (SIGKILL, or SIGTERM with ``kill=False``) and start a new process with the same
        options on the same port; this object then stands for the new process."""
        if kill:
            self.kill()
        self.stop()
        self._earlier_stderr += self._reader.lines
        home = self._home or Path(tempfile.mkdtemp(prefix="prismer-rt-serve-"))
        process, reader = _launch(home, {**self._options, "port": self.port})
        self.process, self._reader = process, reader
        if reader.url is None or not reader.url.endswith(f":{self.port}"):
            self.stop()
            message = f"the server did not listen again on port {self.port}:\n{self.stderr}"
            raise ServerStartError(message)

    def log(self) -> list[dict[str, Any]]:
        """``GET /_control/log``: what the server saw."""
        response = requests.get(self.url + "/_control/log", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def sync_head(self) -> int:
        """``GET /_control/sync-head``: the last ``seq`` of the event log (0 when empty)."""
        response = requests.get(self.url + "/_control/sync-head", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return int(response.json()["head"])

    def emit(self, type: str, payload: Any = None, to: str | None = None) -> dict[str, Any]:
        """``POST /_control/emit``: push an event through the normal delivery path."""
        body = {"type": type, "payload": {} if payload is None else payload, "to": to}
        response = requests.post(self.url + "/_control/emit", json=body, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def set_faults(self, faults: Iterable[str]) -> None:
        """``POST /_control/faults``: replace the active faults."""
        body = {"faults": list(faults)}
        response = requests.post(self.url + "/_control/faults", json=body, timeout=HTTP_TIMEOUT)
        response.raise_for_status()

    def stop(self) -> int:
        """SIGTERM, wait, kill on timeout; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


def server_command(
    *,
    dialect: str = "docs",
    tokens: Iterable[str] = (),
    faults: Iterable[str] = (),
    port: int = 0,
    auth_timeout: float | None = None,
    ack_timeout: float | None = None,
    heartbeat: float | None = None,
    token_ttl: float | None = None,
    max_message_bytes: int | None = None,
    extra_args: Iterable[str] = (),
) -> list[str]:
    args = [sys.executable, "-m", "prismer_cli.server", "--port", str(port), "--dialect", dialect]
    for token in tokens:
        args += ["--token", token]
    for fault in faults:
        args += ["--fault", fault]
    timers = {
        "--auth-timeout": auth_timeout,
        "--ack-timeout": ack_timeout,
        "--heartbeat": heartbeat,
        "--token-ttl": token_ttl,
        "--max-message-bytes": max_message_bytes,
    }
    for option, value in timers.items():
        if value is not None:
            args += [option, str(value)]
    return [*args, *extra_args]


def server_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(home: Path | None = None, **options: Any) -> ServerProcess:
    """Start a server (see :func:`server_command` for the options) and wait until it listens."""
    home = home or Path(tempfile.mkdtemp(prefix="prismer-rt-serve-"))
    (home / ".config").mkdir(parents=True, exist_ok=True)
    process, reader = _launch(home, options)
    server = ServerProcess(process, reader, options.get("dialect", "docs"), home, options)
    if reader.url is None:
        server.stop()
        raise ServerStartError(f"the server did not start listening:\n{server.stderr}")
    return server


@contextlib.contextmanager
def running_server(home: Path | None = None, **options: Any) -> Iterator[ServerProcess]:
    """A server for the duration of a ``with`` block."""
    server = start_server(home, **options)
    try:
        yield server
    finally:
        server.stop()


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with ``server_factory(dialect=..., tokens=[...], faults=[...])``;
    all of them are stopped when the test ends."""
    started: list[ServerProcess] = []

    def factory(**options: Any) -> ServerProcess:
        server = start_server(tmp_path / f"server-home-{len(started)}", **options)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module", params=["docs", "server"])
def dialect_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server per dialect and test module that knows alice (Alice), bob (Bob) and the
    tokens the module lists in SERVER_TOKENS."""
    home = tmp_path_factory.mktemp(f"{request.module.__name__}-{request.param}")
    tokens = ["alice=Alice", "bob=Bob", *getattr(request.module, "SERVER_TOKENS", ())]
    with running_server(home, dialect=request.param, tokens=tokens) as srv:
        yield srv


Hole = TypeVar("Hole", bound="BlackHole")


class BlackHole:
    """A loopback listener that accepts TCP connections and never reads or answers: no HTTP
    response, no WebSocket upgrade, no SSE stream, ever, until :meth:`close` (or the end of its
    `with` block)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        """How many connections it has accepted so far."""
        return len(self._held)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self._accepted(conn)

    def _accepted(self, conn: socket.socket) -> None:
        """What becomes of a connection: nothing at all, in a black hole."""

    def __enter__(self: Hole) -> Hole:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(STOP_TIMEOUT)
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    """A :class:`BlackHole` on a free loopback port, closed after the test."""
    hole = BlackHole()
    yield hole
    hole.close()
