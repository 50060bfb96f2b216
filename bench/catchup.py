"""Catch-up section: `prismer-rt listen --since all --no-follow` reading the event log (and the
cron line with --cursor-file), beside a requests paging loop with json and with orjson."""

from __future__ import annotations

from environment import HERE
from harness import Bench, Case, Sample, cursor_of, numbered_frames, run_client


def check_catchup(output: bytes, count: int) -> tuple[bool, str]:
    """Every stored event exactly once and in order, printed as the live envelope: seq 1..count,
    the message's id, metadata turned back into an object."""
    frames, wrong = numbered_frames(
        output, count, "stored events", "seqs out of order, repeated or missing"
    )
    if wrong:
        return False, wrong
    for number, frame in enumerate(frames, 1):
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


def bench_catchup(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n, token = s.catchup_events, f"log-{s.catchup_events}"
    env = bench.prismer_env(token)
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
                bench.live, listen, env, sink=sink, keep=keep, timeout=timeout, connections=2
            )

        cases.append((row, run, n))
    # The cron line: a cursor file (new each run, so that it starts from the beginning).
    cursor_row = r.row(
        "catchup",
        "catchup.prismer.cursor",
        "prismer-rt listen --cursor-file F --since all --no-follow > /dev/null",
        "events/s",
    )
    cursors = bench.tmp / "catchup-cursors"
    cursors.mkdir(exist_ok=True)
    saved: list[int | None] = []

    def run_cursor(i: int) -> Sample:
        path = cursors / f"run-{i}.cursor"
        cmd = [*listen[:2], "--cursor-file", str(path), *listen[2:]]
        sample = run_client(bench.live, cmd, env, timeout=timeout, connections=2)
        saved.append(cursor_of(path))
        return sample

    cases.append((cursor_row, run_cursor, n))
    clients = str(HERE / "clients.py")
    base = f"http://127.0.0.1:{bench.live.port}"
    for kind, label in (
        ("sync-json", "requests paging loop, json"),
        ("sync-orjson", "requests paging loop, orjson"),
    ):
        cases += bench.receive_cases(
            "catchup",
            f"catchup.{kind}",
            label,
            [t.python, clients, kind, base, token],
            bench.env,
            n,
        )
    bench.round_robin(
        "catchup", cases, check_key="catchup.prismer.pipe", count=n, check=check_catchup
    )
    ok = bool(saved) and all(c == n for c in saved)
    bench.results.checks["catchup.cursor"] = {
        "ok": ok,
        "detail": f"--cursor-file saved the last stored seq ({n}) in every run"
        if ok
        else f"cursor files ended at {saved}, not {n}",
    }
