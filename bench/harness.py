"""What every section of the benchmark shares: the server process, running one client and
timing it, the rows of results, and the round robin that interleaves the clients compared."""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from environment import HERE, Tools, base_env
from settings import Settings

SEQ = re.compile(rb'"seq":(\d+)')
Check = Callable[[bytes, int], tuple[bool, str]]  # (output, count) -> (complete?, why)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the server process ---------------------------------------------------------------------------
class ServerProcess:
    """bench/servers.py in a process of its own; its per-connection reports, read by a thread."""

    def __init__(self, python: str, prebuild: Sequence[str]) -> None:
        self._cond = threading.Condition()
        self._starts: dict[int, dict[str, Any]] = {}
        self._ends: dict[int, dict[str, Any]] = {}
        self.port = 0
        self.proc = subprocess.Popen(
            [python, str(HERE / "servers.py"), "--prebuild", *prebuild],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.port or self.proc.poll() is not None, 300):
                raise RuntimeError("the benchmark server did not start")
        if not self.port:
            raise RuntimeError("the benchmark server exited")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            with self._cond:
                if record["ev"] == "ready":
                    self.port = record["port"]
                elif record["ev"] == "start":
                    self._starts[record["conn"]] = record
                elif record["ev"] == "end":
                    self._ends[record["conn"]] = record
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return max([0, *self._starts, *self._ends])

    def connections(self, since: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The connections opened after `since`, once each has ended: start and end merged."""

        def ready() -> bool:
            started = [c for c in self._starts if c > since]
            return bool(started) and all(c in self._ends for c in started)

        with self._cond:
            self._cond.wait_for(ready, timeout)
            started = sorted(c for c in self._starts if c > since)
            return [
                {**self._ends.get(c, {}), **self._starts[c], "ended": c in self._ends}
                for c in started
            ]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- running one client ---------------------------------------------------------------------------
@dataclass
class Sample:
    ok: bool
    elapsed: float  # seconds, from the server's answer to the client's exit
    rc: int | None
    lines: int = 0
    frames_in: int = 0
    output: bytes = b""
    error: str = ""
    conns: list[dict[str, Any]] = field(default_factory=list)  # the server's reports


class Drain(threading.Thread):
    """The consumer at the other end of a pipe: reads everything, keeps it only if asked.

    It reads into one preallocated buffer (no allocation per read), as `cat` would.
    """

    def __init__(self, stream: Any, keep: bool) -> None:
        super().__init__(daemon=True)
        self.stream, self.keep = stream, keep
        self.chunks: list[bytes] = []
        self.lines = 0

    def run(self) -> None:
        buf = bytearray(1 << 18)
        view = memoryview(buf)
        readinto, keep, chunks = self.stream.raw.readinto, self.keep, self.chunks
        lines = 0
        while True:
            n = readinto(buf)
            if not n:
                break
            lines += buf.count(b"\n", 0, n)
            if keep:
                chunks.append(bytes(view[:n]))
        self.lines = lines


def wait_exit(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Wait for the process to end, killed after `timeout` seconds; its exit is seen at once
    (a blocking waitpid). Popen.wait(timeout) polls, sleeping up to 50 ms between two looks,
    which added 0-50 ms to a run's time: more to a fast client's short run than to a slow one's."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        proc.wait()
    finally:
        killer.cancel()


def run_client(
    server: ServerProcess,
    cmd: list[str],
    env: dict[str, str],
    *,
    sink: str = "null",
    keep: bool = False,
    stdin: Any = subprocess.DEVNULL,
    timeout: float = 300.0,
    connections: int = 1,
) -> Sample:
    """Run one client against the server; time it from the server's answer to its exit.

    `connections`: how many the client is expected to open at most (more is reported)."""
    mark = server.mark()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE if sink == "pipe" else subprocess.DEVNULL,
            stderr=err,
        )
        drain = None
        if sink == "pipe":
            assert proc.stdout is not None
            drain = Drain(proc.stdout, keep)
            drain.start()
        wait_exit(proc, timeout)
        if drain is not None:
            drain.join()
            assert proc.stdout is not None
            proc.stdout.close()
        t_end = time.perf_counter_ns()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace").strip()
    conns = server.connections(mark)
    if not conns:
        return Sample(False, 0.0, proc.returncode, error=f"never connected; {stderr[-300:]}")
    elapsed = (t_end - conns[0]["t"]) / 1e9
    sample = Sample(
        ok=proc.returncode == 0,
        elapsed=elapsed,
        rc=proc.returncode,
        lines=drain.lines if drain else 0,
        frames_in=sum(c.get("frames_in", 0) for c in conns),
        output=b"".join(drain.chunks) if drain else b"",
        error="" if proc.returncode == 0 else f"exit {proc.returncode}: {stderr[-300:]}",
        conns=conns,
    )
    if len(conns) > connections:
        sample.error += f" ({len(conns)} connections)"
    return sample


# -- results ------------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    key: str
    label: str
    unit: str  # "events/s", "cmds/s", "ms", "us", "MiB"
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""

    @property
    def value(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


Case = tuple[Row, Callable[[int], Sample], int]  # a row, how to run it (run index), events


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.checks: dict[str, dict[str, Any]] = {}

    def row(self, section: str, key: str, label: str, unit: str) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(section, key, label, unit)
        return self.rows[key]

    def skip(self, section: str, key: str, label: str, unit: str, why: str) -> None:
        self.row(section, key, label, unit).skipped = why

    def value(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.value if row else None


def rate_sample(row: Row, sample: Sample, count: int) -> None:
    if sample.ok and sample.elapsed > 0:
        row.samples.append(count / sample.elapsed)
    else:
        row.errors.append(sample.error or f"exit {sample.rc}")


# -- what a section works with ------------------------------------------------------------------
class Bench:
    """What every section works with: the settings, the tools, the clients' environment, the
    results so far, and the server while it runs."""

    def __init__(self, settings: Settings, tools: Tools, home: Path) -> None:
        self.s = settings
        self.tools = tools
        self.results = Results()
        self.env = base_env(home)
        self.server: ServerProcess | None = None
        self.tmp = home

    @property
    def live(self) -> ServerProcess:
        """The server, while run() has it running."""
        if self.server is None:
            raise RuntimeError("the benchmark server is not running")
        return self.server

    def prismer_env(self, token: str) -> dict[str, str]:
        return {
            **self.env,
            "PRISMER_URL": f"http://127.0.0.1:{self.live.port}",
            "PRISMER_TOKEN": token,
        }

    def url(self, scheme: str, path: str, token: str) -> str:
        return f"{scheme}://127.0.0.1:{self.live.port}{path}?token={token}"

    def receive_cases(
        self,
        section: str,
        key: str,
        label: str,
        cmd: list[str] | None,
        env: dict[str, str],
        n: int,
        missing: str = "",
        keep_pipe: bool = False,
    ) -> list[Case]:
        """One case per sink (/dev/null, a pipe drained by this process) for one client."""
        r = self.results
        cases: list[Case] = []
        timeout = max(120.0, n / 1_000)
        for sink, suffix, shown in (("null", "", " > /dev/null"), ("pipe", ".pipe", " | reader")):
            row_key, row_label = key + suffix, label + shown
            if cmd is None:
                r.skip(section, row_key, row_label, "events/s", missing)
                continue
            keep = keep_pipe and sink == "pipe"

            def run(i: int, sink: str = sink, keep: bool = keep) -> Sample:
                return run_client(
                    self.live, cmd, env, sink=sink, keep=keep and i == 0, timeout=timeout
                )

            cases.append((r.row(section, row_key, row_label, "events/s"), run, n))
        return cases

    def round_robin(
        self,
        section: str,
        cases: list[Case],
        check_key: str,
        count: int,
        check: Check,
    ) -> None:
        """Run every case once per round, so that drift in the machine hits all alike."""
        for i in range(self.s.runs):
            for row, run, n in cases:
                sample = run(i)
                rate_sample(row, sample, n)
                if row.key == check_key and i == 0:
                    ok, why = check(sample.output, count) if sample.ok else (False, sample.error)
                    self.results.checks[section + ".complete"] = {"ok": ok, "detail": why}
                    sample.output = b""  # checked: let the memory go
                    log(f"    check {section}: {'ok' if ok else 'FAILED'}: {why}")
                shown = f"{n / sample.elapsed:,.0f}/s" if sample.ok else f"error {sample.error}"
                log(f"    run {i + 1}/{self.s.runs} {row.label}: {shown}")


def numbered_frames(output: bytes, count: int, what: str, disorder: str) -> tuple[list[Any], str]:
    """The output's lines as JSON, and why they are not `count` JSON lines carrying seq
    1..count in order ("" if they are). `what` names the events, `disorder` the seqs out of
    order."""
    lines = output.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count:
        return [], f"{len(lines)} lines for {count} {what}"
    seqs = [int(m) for m in SEQ.findall(output)]
    if seqs != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(seqs))[:5]
        return [], f"{disorder} (first missing: {missing})"
    frames = []
    for number, line in enumerate(lines, 1):
        try:
            frames.append(json.loads(line))
        except ValueError:
            return [], f"line {number} is not JSON"
    return frames, ""


def cursor_of(path: Path) -> int | None:
    """The cursor saved in a cursor file, None if there is none."""
    try:
        cursor = json.loads(path.read_text()).get("cursor")
    except (OSError, ValueError):
        return None
    return cursor if isinstance(cursor, int) else None


def percentile(ordered: list[int], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])
