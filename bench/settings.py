"""What a run of the benchmark measures: its sections and their sizes, from the options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

SECTIONS = ("ws", "sse", "startup", "send", "catchup", "latency", "memory")


@dataclass
class Settings:
    runs: int
    events: int
    wsclient_events: int  # websocket-client's default reader is ~40x slower: fewer events
    startup_runs: int
    startup_warmup: int
    send_lines: int
    send_one_lines: int  # one conversation: a round trip per message, so fewer
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
        send_lines = args.send_lines or (events if quick else 100_000)
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
            send_lines=send_lines,
            send_one_lines=max(1, send_lines // 5),
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
