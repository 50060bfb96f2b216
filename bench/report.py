"""The report: the Markdown table of every figure (the machine first), then the target table
(bench/targets.py), and the JSON document of --json."""

from __future__ import annotations

import statistics
from typing import Any

from environment import Tools, unset_knobs
from harness import Results
from settings import Settings
from targets import fmt, ratio, targets, verdict

BUSY = 0.8  # a send run whose echo server was busy this share of the time: the server's pace


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
        "send": "Send, docs dialect (one connection)",
        "send.one": "Send, one conversation (server dialect)",
        "send.many": "Send, 100 conversations (server dialect)",
        "catchup": "Catch-up (event log)",
        "latency": "Latency",
        "memory": "Memory",
    }
    base = {
        "ws": v("ws.prismer"),
        "sse": v("sse.prismer"),
        "send": v("send.prismer"),
        "send.one": v("send.one.prismer"),
        "send.many": v("send.many.prismer"),
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
        busy = row.extra.get("server_busy")
        if busy and statistics.median(busy) >= BUSY:
            result += f" (server busy {statistics.median(busy):.0%}: its pace, not the client's)"
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
        lines.append(f"| {target.name} | {target.measured} | {verdict(target)} |")
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
