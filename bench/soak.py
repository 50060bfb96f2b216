"""The soak test: prismer-rt's delivery promises held for minutes under faults, counted.

    python bench/soak.py [--quick] [--duration S] [--rate N] [--seed N] [--json FILE]

For the duration (default 10 minutes; --quick: 60 s), on 127.0.0.1 only:
- `prismer-rt serve --dialect server` runs (with `--fault concurrent-handling` always on where
  the server has it: the real server handles a socket's messages concurrently);
- a producer sends `soak-NNNNNN` messages at a steady rate (--rate per second) to one direct
  conversation through `prismer-rt send` runs (JSON lines, a fixed idempotency key each); some
  runs are killed (SIGTERM or SIGKILL) at a random moment and the batch runs again, same keys;
- faults come on a random schedule (bench/soak_faults.py): connection drops, WebSocket
  upgrades answered 502, 503 refusals, 429s, half-open connections, garbage frames, evictions;
- a durable `prismer-rt listen --cursor-file F --since all` is killed with SIGTERM or SIGKILL
  at random moments and started again on the same file.

Then the faults stop, the last batch is confirmed, the listener gets time to print everything
stored, is stopped with SIGTERM, and one `listen --cursor-file F --no-follow` runs on the same
file. The table counts, by message id: produced, stored (the server's /_control/messages),
printed, lost, posted twice, printed twice (after SIGTERM: none allowed; after SIGKILL: the
events printed since the last cursor save, reported), and the listener's RSS. The exit status
is 1 if a figure that must be 0 is not, 2 if the soak could not run; every child is killed at
exit, and a watchdog ends the whole soak if it overruns its time by more than three minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from environment import base_env
from soak_actors import Children, Producer, Server, log, rss_kib
from soak_count import Counts, count, printed
from soak_faults import MISSING, FaultInjector
from soak_listener import Listener

PRODUCER, LISTENER = "soak-producer", "soak-listener"
# The clients' timers, shortened so that a fault costs seconds, not half a minute, and more of
# them fit in a run (a user's defaults: backoff up to 30 s, a keepalive ping after 15 s).
TIMERS = {
    "PRISMER_RT_BACKOFF_MAX": "4",
    "PRISMER_RT_PING_INTERVAL": "3",
    "PRISMER_RT_PING_TIMEOUT": "3",
}


def prismer_rt() -> list[str]:
    beside = Path(sys.executable).parent / "prismer-rt"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("prismer-rt")
    return [found] if found else [sys.executable, "-m", "prismer_cli"]


def user_id(token: str) -> str:
    """The stand-in's user id of an opaque token (prismer_cli/server/state.py)."""
    import hashlib

    return "usr_" + hashlib.sha256(token.encode()).hexdigest()[:12]


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.children = Children()
        self.stopped = threading.Event()  # SIGINT or SIGTERM: end early, still count
        self.notes: list[str] = []

    def env(self, token: str) -> dict[str, str]:
        return {**base_env(self.work / "home"), **TIMERS, "PRISMER_TOKEN": token}

    def run(self) -> tuple[Counts, dict[str, Any]]:
        args, rng, cmd = self.args, self.rng, prismer_rt()
        quick = args.duration <= 120
        server = Server(self.children, cmd, base_env(self.work / "home"))
        log(f"server {server.url}")
        if server.set_faults(["concurrent-handling"]):
            server.base = ["concurrent-handling"]
        else:
            self.notes.append(
                "concurrent-handling: not a fault of this serve yet, so the server handles a "
                "socket's messages one after the other (the real server does not)"
            )
        server.set_faults([])
        conversation = server.direct_conversation(PRODUCER, user_id(LISTENER))
        urls = {"PRISMER_URL": server.url}
        listener = Listener(
            self.children, [*cmd, "--dialect", "server", "listen"],
            {**self.env(LISTENER), **urls}, self.work / "inbox.cursor", self.work, rng,
            lifetime=(4.0, 12.0) if quick else (10.0, 60.0),
        )  # fmt: skip
        producer = Producer(
            self.children, [*cmd, "--dialect", "server", "send"], {**self.env(PRODUCER), **urls},
            conversation, args.rate, 5.0, 0.3, self.work, rng,
        )  # fmt: skip
        faults = FaultInjector(
            server, LISTENER, rng,
            every=(2.0, 6.0) if quick else (5.0, 20.0),
            lasting=(1.0, 4.0) if quick else (1.0, 8.0),
        )  # fmt: skip
        drain = 30.0 if quick else 60.0
        started = time.monotonic()
        producer.deadline = started + args.duration + drain
        threads = [threading.Thread(target=actor.run, daemon=True) for actor in (listener, faults)]
        for thread in threads:
            thread.start()
        self.stopped.wait(2.0)  # the listener's first run connects before anything is sent
        producing = threading.Thread(target=producer.run, daemon=True)
        producing.start()
        while time.monotonic() - started < args.duration and not self.stopped.is_set():
            self.stopped.wait(1.0)
            if server.proc.poll() is not None:
                raise RuntimeError("prismer-rt serve exited: " + " ".join(server.stderr[-5:]))
        log("the duration is over: faults stop, the last batch is confirmed")
        faults.stop.set()
        producer.stop.set()
        threads[1].join(30)
        server.set_faults([])
        producing.join(max(1.0, producer.deadline - time.monotonic()))
        stored = {m["id"] for m in server.stored(conversation) if m["content"].startswith("soak-")}
        log(f"{len(stored)} stored; waiting for the listener to print them (at most {drain} s)")
        until = time.monotonic() + drain
        while time.monotonic() < until and not self.stopped.is_set():
            seen = {mid for run in listener.runs for mid in printed(run)}
            if stored <= seen:
                break
            self.stopped.wait(1.0)
        listener.stop.set()
        threads[0].join(30)
        rss_end = 0
        if listener.current is not None:
            rss_end = rss_kib(listener.current[1].pid)[0]
        listener.finish()
        counts = count(
            producer.produced,
            server.stored(conversation),
            server.log_seqs(LISTENER),
            listener.runs,
        )
        runs = listener.runs
        info = {
            "duration_s": round(time.monotonic() - started, 1),
            "rate": args.rate,
            "seed": args.seed,
            "listener_runs": len(runs),
            "listener_ends": dict(
                sorted(
                    {r.ended_by: sum(x.ended_by == r.ended_by for x in runs) for r in runs}.items()
                )
            ),
            "rss_start_mib": round(listener.rss_start_kib / 1024, 1),
            "rss_end_mib": round(rss_end / 1024, 1),
            "rss_peak_mib": round(max([r.hwm_kib for r in runs] + [0]) / 1024, 1),
            "send_runs": producer.runs,
            "send_kills": producer.kills,
            "send_reruns": producer.reruns,
            "send_exits": producer.exits,
            "unconfirmed": len(producer.unconfirmed),
            "faults": dict(faults.injected),
            "faults_refused": dict(faults.refused),
            "server_faults_always_on": server.base,
            "missing": [*self.notes, *MISSING],
        }
        return counts, info


def table(c: Counts, info: dict[str, Any]) -> str:
    ends = ", ".join(f"{how} {n}" for how, n in info["listener_ends"].items())
    kills = info["send_kills"]
    exits = ", ".join(f"{code}: {n}" for code, n in sorted(info["send_exits"].items()))
    faults = ", ".join(f"{name} x{n}" for name, n in sorted(info["faults"].items())) or "none"
    lost = f"lost (never stored: {c.not_stored}; stored, never printed: {c.not_printed})"
    rss = f"{info['rss_start_mib']} MiB, {info['rss_end_mib']} MiB ({info['rss_peak_mib']} MiB)"
    sends = (
        f"send runs (killed: SIGTERM {kills['SIGTERM']}, SIGKILL {kills['SIGKILL']}; "
        f"re-runs {info['send_reruns']}; exit statuses {exits})"
    )
    rows = [
        ("produced (messages the producer sent, by id)", f"{c.produced:,}", ""),
        ("stored (by the server, /_control/messages)", f"{c.stored:,}", "= produced"),
        ("printed (by the durable listener, all runs)", f"{c.printed:,}", "= stored"),
        (lost, f"{c.lost}", "0"),
        ("posted twice (stored twice under one idempotency key)", f"{c.posted_twice}", "0"),
        ("printed twice after a SIGTERM (or before the cursor)", f"{c.twice_after_term}", "0"),
        ("printed twice within one run", f"{c.twice_in_run}", "0"),
        (
            "printed twice after a SIGKILL (since the last save)",
            f"{c.twice_after_kill}",
            "reported",
        ),
        ("cursor saved past an unprinted message", f"{c.cursor_past_unprinted}", "0"),
        ("cursor file invalid after a run", f"{c.cursor_invalid}", "0"),
        ("listener still running 10 s after SIGTERM", f"{c.hung}", "0"),
        ("listener RSS: first run at start, last run at end (peak of any run)", rss, ""),
        (f"listener runs, the last --no-follow ({ends})", f"{info['listener_runs']}", ""),
        (sends, f"{info['send_runs']}", ""),
        (f"faults injected ({faults})", f"{sum(info['faults'].values())}", ""),
    ]
    lines = [
        f"Soak: {info['duration_s']:.0f} s at {info['rate']} messages/s (seed {info['seed']})",
        "",
        "| Figure | Value | Must be |",
        "|---|---:|---|",
        *(f"| {name} | {value} | {must} |" for name, value, must in rows),
    ]
    if info["missing"]:
        lines += ["", "Not injected (missing from `prismer-rt serve`):"]
        lines += [f"- {item}" for item in info["missing"]]
    if c.twice_as:
        how = ", ".join(f"{kind} {n}" for kind, n in sorted(c.twice_as.items()))
        lines.append(f"\nThe repeats that count, by how they came: {how}.")
    for what, items in c.examples.items():
        lines.append(f"\nExamples, {what}: {', '.join(items)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 s instead of 10 minutes")
    parser.add_argument("--duration", type=float, help="seconds of traffic (default 600)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seed", type=int, help="seed of the random schedule (default: random)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument(
        "--keep", metavar="DIR", help="work in DIR and keep it (every run's output, the cursor)"
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 60.0 if args.quick else 600.0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    if args.duration <= 0 or args.rate <= 0:
        parser.error("--duration and --rate must be positive")
    with contextlib.ExitStack() as stack:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            work = Path(args.keep)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prismer-rt-soak-")))
        soak = Soak(args, work)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: soak.stopped.set())
        watchdog = threading.Timer(args.duration + 180, watchdog_fired, args=(soak.children,))
        watchdog.daemon = True
        watchdog.start()
        try:
            counts, info = soak.run()
        except (RuntimeError, OSError, ValueError) as exc:
            print(f"soak: could not run: {exc}", file=sys.stderr)
            return 2
        finally:
            watchdog.cancel()
            soak.children.kill_all()
    report = table(counts, info)
    print(report)
    bad = {name: n for name, n in counts.must_be_zero().items() if n}
    if args.json:
        document = {**info, "counts": vars(counts), "must_be_zero": counts.must_be_zero()}
        Path(args.json).write_text(json.dumps(document, indent=2, default=str) + "\n")
    if bad:
        print(f"soak: must be 0: {bad}", file=sys.stderr)
    return 1 if bad else 0


def watchdog_fired(children: Children) -> None:
    print("soak: overran its time by three minutes: stopping", file=sys.stderr, flush=True)
    children.kill_all()
    os._exit(2)


if __name__ == "__main__":
    sys.exit(main())
