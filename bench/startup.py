"""Start-up section: the wall time of whole `prismer-rt` processes (--help, --version, a
one-shot send to the local server) beside `python -c "import click"` and `python -c "pass"`."""

from __future__ import annotations

import subprocess
import time

from harness import Bench, Row, log


def bench_startup(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    env = bench.prismer_env("discard")
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
                bench.env,
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
            bench.env,
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
