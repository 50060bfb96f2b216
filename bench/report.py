"""The report: the Markdown table of every figure (the machine first), the target table (every
target one row: what it asks, what was measured, pass or fail; then the correctness checks),
and the JSON document of --json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from environment import Tools, unset_knobs
from harness import Results
from settings import Settings


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


def document(
    res: Results,
    s: Settings,
    tools: Tools,
    info: dict[str, Any],
    duration: float,
    report: str,
) -> dict[str, Any]:
    """What --json writes: every sample, the machine, the versions, the checks, the targets."""
    return {
        "machine": info,
        "versions": tools.versions,
        "unset_env": unset_knobs(),
        "settings": dict(vars(s).items()),
        "duration_s": round(duration, 1),
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
            for key, row in res.rows.items()
        },
        "checks": res.checks,
        "complete": complete(res),
        "targets": [vars(t) for t in targets(res, s)],
        "table": report,
    }


def complete(res: Results) -> bool:
    """Did prismer-rt's output pass every correctness check?"""
    return all(c["ok"] for c in res.checks.values())
