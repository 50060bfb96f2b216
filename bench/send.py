"""Send section: JSON lines on stdin through `prismer-rt send` over one connection, beside
websocat; a run only counts if the server received every command."""

from __future__ import annotations

from harness import Bench, Row, log, rate_sample, run_client


def bench_send(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n = s.send_lines
    path = bench.tmp / f"commands-{n}.ndjson"
    with path.open("wb") as f:
        for i in range(n):
            f.write(
                b'{"conversationId":"c","content":"bench message %06d: the quick brown '
                b'fox jumps over the lazy dog"}\n' % i
            )
    env = bench.prismer_env("discard")
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
                [t.websocat, "-t", bench.url("ws", "/ws", "discard")],
                bench.env,
            )
        )
    else:
        r.skip("send", "send.websocat", label, "cmds/s", "websocat not found")
    complete = True
    for i in range(s.runs):
        for row, cmd, cmd_env in cases:
            with path.open("rb") as stdin:
                sample = run_client(
                    bench.live, cmd, cmd_env, stdin=stdin, timeout=max(120.0, n / 1_000)
                )
            if sample.ok and sample.frames_in != n:
                sample.ok = False
                sample.error = f"the server received {sample.frames_in} of {n} commands"
            if row.key == "send.prismer" and not sample.ok:
                complete = False
            rate_sample(row, sample, n)
            shown = f"{n / sample.elapsed:,.0f}/s" if sample.ok else f"error {sample.error}"
            log(f"    run {i + 1}/{s.runs} {row.label}: {shown}")
    bench.results.checks["send.complete"] = {
        "ok": complete,
        "detail": f"the server received all {n} commands in every run"
        if complete
        else "some commands did not reach the server",
    }
