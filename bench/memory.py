"""Memory section: the peak RSS of a fresh `prismer-rt listen` through many events and through a
tenth of them, measured from a small helper process (bench/maxrss.py)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from environment import HERE
from harness import Bench, Sample, ServerProcess, log, wait_exit


def bench_memory(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    for i in range(s.memory_runs):
        for n in (s.memory_small, s.memory_events):
            row = r.row(
                "memory", f"memory.{n}", f"prismer-rt listen, {n:,} events, peak RSS", "MiB"
            )
            env = bench.prismer_env(f"stream-{n}")
            rss, sample = rss_run(
                bench.live,
                t.python,
                [t.prismer_rt, "listen", "--count", str(n)],
                env,
                timeout=max(120.0, n / 1_000),
                tmp=bench.tmp,
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
        wait_exit(proc, timeout)
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
