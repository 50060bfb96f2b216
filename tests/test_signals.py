"""Signals as flags (issue 17 item 10, issue 18 item 3), through the real command: a handler
only notes a signal, and `listen` acts on it at a safe point, whenever it comes; SIGHUP at any
moment reloads, SIGINT and SIGTERM end with 130 and 143, a reader that goes away with 0, never
a hang, never a cursor file past what was written."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.support.cli import accepted_connections, command, env_for, user_id, wait_until
from tests.support.serverfixture import BlackHole, ServerFactory

TOKEN = "signals-token"


def _started(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _catches(pid: int, signum: int) -> None:
    """Wait until process `pid` catches `signum` (Linux: /proc/PID/status SigCgt)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(status.split("SigCgt:", 1)[1].split()[0], 16)
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} never caught signal {signum}")


@pytest.mark.parametrize(
    ("signum", "delay"),
    [(signal.SIGHUP, 0.0), (signal.SIGHUP, 0.15), (signal.SIGTERM, 0.0), (signal.SIGTERM, 0.3)],
    ids=["hup-at-once", "hup-later", "term-at-once", "term-later"],
)
def test_a_signal_from_the_first_moment_is_handled(
    server_factory: ServerFactory, signum: int, delay: float
) -> None:
    """SIGHUP and SIGTERM are caught from the program's first steps, long before it connects
    (SIGHUP was caught only once connected, and ended listen with 129 before): a SIGHUP then
    reloads (exit 0 at --timeout), a SIGTERM ends it with 143."""
    server = server_factory()
    proc = _started("listen", "--timeout", "1.5", "-v", env=env_for(server.url, TOKEN))
    _catches(proc.pid, signum)
    if not delay:
        assert not accepted_connections(server.log()), "caught only once connected"
    time.sleep(delay)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err
    if signum == signal.SIGTERM:
        assert proc.returncode == 143, err.decode()
    else:
        assert proc.returncode == 0, err.decode()
        assert "SIGHUP: the configuration is re-read before the next connection" in err.decode()


def test_sighup_while_listen_reads_its_configuration_reloads(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """listen blocked reading its token from a pipe (`--token-file <(...)`), long before it
    connects: a SIGHUP then is kept, and reloads (it ended listen with 129)."""
    server = server_factory()
    fifo = tmp_path / "token"
    os.mkfifo(fifo, 0o600)
    env = env_for(server.url, None)
    proc = _started("listen", "--token-file", str(fifo), "--timeout", "1.5", "-v", env=env)
    _catches(proc.pid, signal.SIGINT)  # the interpreter runs ...
    time.sleep(0.5)  # ... and waits for the pipe
    assert proc.poll() is None
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    try:  # the token: the configuration is read, the program goes on (if it still runs)
        pipe = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader any more
        pass
    else:
        os.write(pipe, TOKEN.encode() + b"\n")
        os.close(pipe)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert "SIGHUP: the configuration is re-read before the next connection" in err.decode()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_ends_every_wait_at_once(
    black_hole: BlackHole, server_factory: ServerFactory, signum: int, status: int
) -> None:
    """Blocked in a connection attempt (a server that never answers), in the backoff (a server
    that is down), or in the catch-up: the signal is acted on at once, not when the wait ends."""
    down = server_factory()
    down_url = down.url
    down.stop()
    env = dict(env_for(black_hole.url, TOKEN), PRISMER_RT_CONNECT_TIMEOUT="30")
    cases = [
        ("listen",),  # the WebSocket upgrade never answered
        ("listen", "--since", "all", "--no-follow"),  # a page of the log never answered
    ]
    runs = [(args, env) for args in cases]
    runs.append((("listen",), dict(env_for(down_url, TOKEN), PRISMER_RT_BACKOFF_INITIAL="30")))
    for args, run_env in runs:
        proc = _started(*args, env=run_env)
        time.sleep(1.0)  # well inside the wait
        start = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == status, (args, err.decode())
        assert time.monotonic() - start < 3.0, args
        assert b"Traceback" not in err


def test_no_handler_raises_and_the_grace_is_gone() -> None:
    """Only prismer_cli/signals.py sets the handlers of listen (flags), and nothing waits for a
    fixed grace before a forced exit any more, nor a signal sent to wake a thread. (`chat`'s
    command and `serve` set their own: SIGHUP for a terminal session, an event loop's.)"""
    root = Path(__file__).resolve().parents[1] / "prismer_cli"
    own = ("signals.py", "run.py", "chat.py")
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "os._exit" not in text, path
        assert "pthread_kill" not in text, path
        if path.parent.name != "server" and path.name not in own:
            assert "signal.signal(" not in text, path


# -- the stress test ------------------------------------------------------------------------
WORKERS = 8  # parallel runs of each kind, each with its own user and cursor file
RUNS = 25  # per worker: 200 of each kind


class _Producer(threading.Thread):
    """alice posts direct messages to each worker's user in turn, numbered, until stopped."""

    def __init__(self, url: str, users: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.users = url, users
        self.sent: dict[str, list[str]] = {u: [] for u in users}
        self.halt = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer alice"
        while not self.halt.is_set():
            for user in self.users:
                content = f"{user}-{len(self.sent[user]) + 1}"
                answer = session.post(
                    f"{self.url}/api/im/direct/{user_id(user)}/messages",
                    json={"content": content},
                    timeout=10,
                )
                assert answer.status_code == 201, answer.text
                self.sent[user].append(content)
            time.sleep(0.5)  # ~30 events a second in all: flowing, and the CPU left to the runs


def _cursor(path: Path) -> int | None:
    """The saved cursor; the file, when there is one, must be whole and one of ours."""
    if not path.exists():
        return None
    data = orjson.loads(path.read_bytes())
    assert data["version"] == 1 and type(data["cursor"]) is int, data
    return int(data["cursor"])


def _contents(out: bytes) -> list[str]:
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    return [line["payload"]["content"] for line in lines if line["type"] == "message.new"]


def _head_runs(url: str, user: str, cursor: Path) -> None:
    """`listen --cursor-file F | head -1`, RUNS times: each ends (no hang), prints the first
    event after the last cursor, and leaves a whole cursor file that never goes back."""
    listen = " ".join(command("listen", "--cursor-file", str(cursor), "--since", "all"))
    before = 0
    for _ in range(RUNS):
        shell = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{listen} | head -1"],
            env=env_for(url, user),
            capture_output=True,
            timeout=30,
        )
        assert shell.returncode == 0, shell.stderr.decode()
        (line,) = shell.stdout.splitlines()
        printed = orjson.loads(line)
        after = _cursor(cursor)
        assert after is not None and after >= before
        if "seq" in printed:  # a stored event: the first one after the last run's cursor
            assert before < printed["seq"] <= after
        before = after


def _sigterm_runs(url: str, user: str, cursor: Path, rand: random.Random) -> list[str]:
    """A durable listen stopped by SIGTERM at a random moment, RUNS times: 143 every time (a
    SIGTERM while it starts too), a whole cursor file; what each printed, in order."""
    printed: list[str] = []
    for _ in range(RUNS):
        proc = _started(
            "listen", "--cursor-file", str(cursor), "--since", "all", env=env_for(url, user)
        )
        _catches(proc.pid, signal.SIGTERM)  # its first instants (test_sigterm_at_any_moment)
        time.sleep(rand.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err.decode()
        assert b"Traceback" not in err
        _cursor(cursor)
        printed += _contents(out)
    return printed


@pytest.mark.slow
def test_stress_head_and_sigterm(server_factory: ServerFactory, tmp_path: Path) -> None:
    """200 runs of `listen --cursor-file F | head -1` and 200 SIGTERMs at random moments of a
    durable listen, with events flowing, in parallel batches: no hang, every cursor file whole,
    and never past an event that was not written: after the SIGTERMed runs, a last --no-follow
    run prints the rest, and together they printed every message."""
    heads = [f"head{i}" for i in range(WORKERS)]
    terms = [f"term{i}" for i in range(WORKERS)]
    server = server_factory(dialect="server", tokens=["alice", *heads, *terms])
    producer = _Producer(server.url, heads + terms)
    producer.start()
    rand = random.Random(os.getpid())
    try:
        with ThreadPoolExecutor(2 * WORKERS) as pool:
            jobs: list[Any] = [
                pool.submit(_head_runs, server.url, u, tmp_path / f"{u}.cursor") for u in heads
            ]
            terms_done = {
                u: pool.submit(
                    _sigterm_runs,
                    server.url,
                    u,
                    tmp_path / f"{u}.cursor",
                    random.Random(rand.random()),
                )
                for u in terms
            }
            for job in [*jobs, *terms_done.values()]:
                job.result(timeout=300)
    finally:
        producer.halt.set()
        producer.join(10)
    for user, job in terms_done.items():
        rest = subprocess.run(
            command(
                "listen",
                "--cursor-file",
                str(tmp_path / f"{user}.cursor"),
                "--since",
                "all",
                "--no-follow",
            ),
            env=env_for(server.url, user),
            capture_output=True,
            timeout=60,
        )
        assert rest.returncode == 0, rest.stderr.decode()
        seen = set(job.result()) | set(_contents(rest.stdout))
        missing = [m for m in producer.sent[user] if m not in seen]
        assert not missing, f"{user}: {len(missing)} never printed, the first {missing[:3]}"


def test_a_stop_ends_a_handler_that_runs_long(server_factory: ServerFactory) -> None:
    """listen --exec with a command that takes its time: SIGTERM ends the run (143) at once,
    the command with it, not when --exec-timeout (60 s) is over."""
    server = server_factory()
    proc = _started("listen", "--exec", "sleep 30", env=env_for(server.url, TOKEN))
    wait_until(lambda: bool(accepted_connections(server.log())), timeout=15)
    server.emit("task.updated", {"taskId": "t1"}, to=user_id(TOKEN))
    time.sleep(1.0)  # the command runs
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err.decode()
    assert time.monotonic() - start < 3.0
