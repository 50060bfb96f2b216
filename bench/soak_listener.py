"""The soak test's durable listener: `prismer-rt listen --cursor-file F --since all`, killed with
SIGTERM or SIGKILL at random moments and started again on the same file, each run's output in
a file of its own; then, at the end, a last `--no-follow` run on the same file."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from soak_actors import TERM_GRACE, Children, log, read_cursor, rss_kib


@dataclass
class Run:
    index: int
    out: Path
    cursor_start: int | None  # the cursor file's value when the run started
    started: float = field(default_factory=time.monotonic)
    ended_by: str = ""  # "SIGTERM", "SIGKILL", "exit N"
    cursor_end: int | None = None
    cursor_valid: bool = True
    hung: bool = False  # still running TERM_GRACE seconds after SIGTERM
    rss_kib: int = 0  # VmRSS just before it ended
    hwm_kib: int = 0  # its peak RSS (VmHWM) just before it ended
    seconds: float = 0.0
    no_follow: bool = False


@dataclass
class Listener:
    children: Children
    cmd: list[str]  # prismer-rt listen ... (the cursor file and --since are added here)
    env: dict[str, str]
    cursor_file: Path
    workdir: Path
    rng: random.Random
    lifetime: tuple[float, float]  # a run is ended after uniform(*lifetime) seconds
    stop: threading.Event = field(default_factory=threading.Event)
    runs: list[Run] = field(default_factory=list)
    rss_start_kib: int = 0  # the first run's RSS a few seconds after it started
    current: tuple[Run, subprocess.Popen[bytes]] | None = None

    def start(self, *extra: str) -> tuple[Run, subprocess.Popen[bytes]]:
        cursor, _ = read_cursor(self.cursor_file)
        run = Run(len(self.runs) + 1, self.workdir / f"listen-{len(self.runs) + 1:04d}.out", cursor)
        self.runs.append(run)
        cmd = [*self.cmd, "--cursor-file", str(self.cursor_file), "--since", "all", *extra]
        with run.out.open("wb") as out:
            proc = self.children.start(
                cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        return run, proc

    def run(self) -> None:
        """Runs, each ended at a random moment, until `stop`: the last one is left running."""
        while not self.stop.is_set():
            run, proc = self.current = self.start()
            end_at = time.monotonic() + self.rng.uniform(*self.lifetime)
            while not self.stop.is_set() and proc.poll() is None and time.monotonic() < end_at:
                if run.index == 1 and not self.rss_start_kib and time.monotonic() - run.started > 3:
                    self.rss_start_kib = rss_kib(proc.pid)[0]
                self.stop.wait(0.1)
            if self.stop.is_set():
                return
            self.end(run, proc, self.rng.choice(["SIGTERM", "SIGKILL"]))
            self.stop.wait(self.rng.uniform(0.0, 0.5))

    def end(self, run: Run, proc: subprocess.Popen[bytes], how: str) -> None:
        """End a run (or note that it ended by itself), and read what it left in the file."""
        if proc.poll() is None:
            run.rss_kib, run.hwm_kib = rss_kib(proc.pid)
            proc.send_signal(getattr(signal, how))
            try:
                proc.wait(TERM_GRACE)
            except subprocess.TimeoutExpired:
                run.hung = True
                log(f"listener run {run.index} still running {TERM_GRACE:.0f} s after {how}")
                proc.kill()
                proc.wait()
            run.ended_by = how
        else:
            run.ended_by = f"exit {proc.returncode}"
            if not run.no_follow:
                log(f"listener run {run.index} exited by itself ({proc.returncode})")
        run.seconds = time.monotonic() - run.started
        run.cursor_end, run.cursor_valid = read_cursor(self.cursor_file)
        if not run.cursor_valid:
            log(f"listener run {run.index}: the cursor file is not valid after {how}")

    def finish(self) -> None:
        """SIGTERM the run left running, then one `--no-follow` run on the same file."""
        if self.current is not None:
            run, proc = self.current
            if not run.ended_by:
                self.end(run, proc, "SIGTERM")
        run, proc = self.start("--no-follow")
        run.no_follow = True
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            run.hung = True
            proc.kill()
            proc.wait()
        self.end(run, proc, "SIGTERM")
