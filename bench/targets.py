"""The target table: every target one row, with what was measured (the ratio and the figures it
divides) and pass or fail; then one row per correctness check.

The targets are those of issue 21 (round two: start-up, receive, catch-up, send against
websocat, latency, memory) and issue 18 (send to one conversation and over 100), plus the
first round's that no later target replaces (absolute receive rates, the docs-dialect send
rate, the latency with --cursor-file, the json paging loop). A target that is not met fails
here, in the open: none is hidden or lowered. A target whose comparison tool is missing says
"skipped" and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness import Results
from settings import Settings


@dataclass
class Target:
    name: str
    measured: str
    ok: bool | None  # None: could not be measured (or skipped: `measured` says why)


@dataclass(frozen=True)
class Goal:
    """One target: `key` alone (a figure), `key` / `versus` (a ratio), or `key` - `minus`."""

    section: str  # the --only section that measures it
    name: str
    key: str
    unit: str
    ok: Callable[[float], bool]
    versus: str = ""
    minus: str = ""


def goals(s: Settings) -> list[Goal]:
    big, small = f"memory.{s.memory_events}", f"memory.{s.memory_small}"
    click = 'python -c "import click"'
    return [
        Goal("ws", "listen over WS >= 100,000 events/s to /dev/null", "ws.prismer", "events/s",
             lambda x: x >= 100_000),
        Goal("ws", "listen over WS >= 3.0x the websockets sync client", "ws.prismer",
             "events/s", lambda q: q >= 3.0, versus="ws.websockets"),
        Goal("ws", "listen over WS piped >= 0.5x websocat piped", "ws.prismer.pipe", "events/s",
             lambda q: q >= 0.5, versus="ws.websocat.pipe"),
        Goal("sse", "listen over SSE >= 100,000 events/s", "sse.prismer", "events/s",
             lambda x: x >= 100_000),
        Goal("sse", "listen over SSE >= 4.0x requests + sseclient-py", "sse.prismer",
             "events/s", lambda q: q >= 4.0, versus="sse.sseclient"),
        Goal("startup", f'one-shot prismer-rt send C "x" <= 2.0x {click}', "startup.send", "ms",
             lambda q: q <= 2.0, versus="startup.click"),
        Goal("startup", f"prismer-rt --help <= 1.3x {click}", "startup.help", "ms",
             lambda q: q <= 1.3, versus="startup.click"),
        Goal("startup", f"prismer-rt --version <= 0.6x {click}", "startup.version", "ms",
             lambda q: q <= 0.6, versus="startup.click"),
        Goal("send", "send, docs dialect >= 50,000 commands/s", "send.prismer", "cmds/s",
             lambda x: x >= 50_000),
        Goal("send", "send, one conversation (server dialect) >= 5,000 commands/s",
             "send.one.prismer", "cmds/s", lambda x: x >= 5_000),
        Goal("send", "send, 100 conversations (server dialect) >= 50,000 commands/s",
             "send.many.prismer", "cmds/s", lambda x: x >= 50_000),
        Goal("send", "send, 100 conversations >= 0.4x websocat", "send.many.prismer", "cmds/s",
             lambda q: q >= 0.4, versus="send.many.websocat"),
        Goal("catchup",
             "catch-up (--since all --no-follow) >= 1.5x a requests paging loop (json)",
             "catchup.prismer", "events/s", lambda q: q >= 1.5, versus="catchup.sync-json"),
        Goal("catchup",
             "catch-up (--since all --no-follow) >= 1.2x a requests paging loop (orjson)",
             "catchup.prismer", "events/s", lambda q: q >= 1.2, versus="catchup.sync-orjson"),
        Goal("latency", "latency p99 < 250 µs (server write -> stdout line)",
             "latency.prismer.p99", "us", lambda x: x < 250),
        Goal("latency", "latency with --cursor-file: p99 < 1 ms", "latency.cursor.p99", "us",
             lambda x: x < 1000),
        Goal("latency", "latency with --cursor-file: p99 within 1 ms of without",
             "latency.cursor.p99", "us", lambda d: d <= 1000, minus="latency.server.p99"),
        Goal("memory", f"peak RSS <= 40 MiB ({s.memory_events:,} events)", big, "MiB",
             lambda x: x <= 40),
        Goal("memory",
             f"RSS flat: {s.memory_events:,} vs {s.memory_small:,} events (<= +2 MiB)",
             big, "MiB", lambda d: d <= 2.0, minus=small),
    ]  # fmt: skip


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


def measure(goal: Goal, res: Results) -> Target:
    """The target's row: its figure, or why there is none."""
    for key in (goal.key, goal.versus, goal.minus):
        row = res.rows.get(key) if key else None
        if row is not None and row.skipped:
            return Target(goal.name, f"skipped: {row.skipped}", None)
    x = res.value(goal.key)
    if goal.versus:
        y = res.value(goal.versus)
        q = ratio(x, y)
        if q is None:
            return Target(goal.name, "not measured", None)
        if goal.unit == "ms":  # start-up: a time, lower is better
            shown = f"{q:.2f}x ({fmt(x, 'ms')} vs {fmt(y, 'ms')})"
        else:
            shown = f"{q:.2f}x ({fmt(x, goal.unit).split()[0]} vs {fmt(y, goal.unit)})"
        return Target(goal.name, shown, goal.ok(q))
    if goal.minus:
        y = res.value(goal.minus)
        if x is None or y is None:
            return Target(goal.name, "not measured", None)
        d = x - y
        shown = f"{d:+,.0f} µs" if goal.unit == "us" else f"{d:+.1f} {goal.unit}"
        return Target(goal.name, shown, goal.ok(d))
    if x is None:
        return Target(goal.name, "not measured", None)
    return Target(goal.name, fmt(x, goal.unit), goal.ok(x))


def targets(res: Results, s: Settings) -> list[Target]:
    """The target table's rows, for the sections run: targets first, then the checks."""
    out = [measure(goal, res) for goal in goals(s) if goal.section in s.sections]
    for key, check in res.checks.items():
        out.append(Target(f"check: {key}", check["detail"], check["ok"]))
    return out


def verdict(target: Target) -> str:
    if target.ok is None:
        return "skipped" if target.measured.startswith("skipped") else "n/a"
    return "pass" if target.ok else "**FAIL**"
