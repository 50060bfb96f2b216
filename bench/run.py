"""prismer-rt against the tools a user would otherwise pick, on this machine, in one command.

    python bench/run.py [--quick] [--runs N] [--events N] [--json FILE] [--only ws,sse,...]

Prints a Markdown table (the machine first) on stdout, progress on stderr. Every figure is the
median of several runs; every ratio compares two tools measured in the same run of this
script against the same local server (bench/servers.py). See bench/README.md.

This file parses the options and runs the sections; each section is a module of its own
(receive, startup, send, catchup, latency, memory), harness.py holds what they share and
report.py the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/'s own modules, beside this file
import catchup
import latency
import memory
import receive
import report
import send
import startup
from environment import Tools, machine, source_state
from harness import Bench, Results, ServerProcess, log
from settings import SECTIONS, Settings

RUNNERS: dict[str, Callable[[Bench], None]] = {
    "ws": receive.bench_ws,
    "sse": receive.bench_sse,
    "startup": startup.bench_startup,
    "send": send.bench_send,
    "catchup": catchup.bench_catchup,
    "latency": latency.bench_latency,
    "memory": memory.bench_memory,
}


def prebuild(s: Settings) -> list[str]:
    """The streams the server builds before it listens, for the sections asked for."""
    want = []
    if "ws" in s.sections:
        want += [f"ws:{s.events}", f"ws:{s.wsclient_events}"]
    if "sse" in s.sections:
        want.append(f"sse:{s.events}")
    if "memory" in s.sections:
        want += [f"ws:{s.memory_events}", f"ws:{s.memory_small}"]
    if "catchup" in s.sections:
        want.append(f"sync:{s.catchup_events}")
    return sorted(set(want))


def run_sections(bench: Bench) -> Results:
    """Start the server, run each section asked for (in the order of SECTIONS), stop it."""
    streams = prebuild(bench.s)
    log(f"building the streams and starting the server ({', '.join(streams)})")
    bench.server = ServerProcess(bench.tools.python, streams)
    try:
        for section in SECTIONS:
            if section in bench.s.sections:
                started = time.monotonic()
                RUNNERS[section](bench)
                log(f"  {section}: {time.monotonic() - started:.1f} s")
    finally:
        bench.server.close()
    return bench.results


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
        results = run_sections(Bench(settings, tools, Path(tmp)))
    table = report.table(results, settings, tools, info)
    print(table)
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.json:
        document = report.document(
            results, settings, tools, info, time.monotonic() - started, table
        )
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if report.complete(results) else 1


if __name__ == "__main__":
    sys.exit(main())
