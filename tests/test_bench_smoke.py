"""A smoke run of the benchmark (bench/run.py --quick): the table comes out, prismer-rt's output
is complete. No timing is asserted here: the benchmark checks its targets, tests never do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "bench" / "run.py"
Report = dict[str, Any]  # the document bench/run.py --json writes, plus "stdout"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Report:
    if not (Path(sys.executable).parent / "prismer-rt").exists():
        pytest.skip("prismer-rt is not installed beside this interpreter")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--quick",
            "--events",
            "2000",
            "--runs",
            "1",
            "--memory-events",
            "4000",
            "--catchup-events",
            "2000",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document: Report = json.loads(out.read_text())
    document["stdout"] = done.stdout
    return document


def test_prints_the_machine_and_the_table(smoke: Report) -> None:
    stdout = smoke["stdout"]
    assert stdout.startswith("Machine: ")
    assert "| Benchmark | Client | Result | prismer-rt vs this |" in stdout
    assert "| Target | Measured | Result |" in stdout
    for section in (
        "WebSocket receive",
        "SSE receive",
        "Start-up",
        "Send",
        "Catch-up (event log)",
        "Latency",
        "Memory",
    ):
        assert f"| {section}" in stdout, section
    assert smoke["table"] == stdout.rstrip("\n")


def test_prismer_rt_output_was_complete(smoke: Report) -> None:
    checks = smoke["checks"]
    assert set(checks) == {
        "ws.complete",
        "sse.complete",
        "send.complete",
        "send.one.complete",
        "send.many.complete",
        "catchup.complete",
        "catchup.cursor",
        "latency.complete",
        "latency.cursor",
    }
    assert all(check["ok"] for check in checks.values()), checks
    assert smoke["complete"] is True


def test_catch_up_is_measured_against_the_paging_loop(smoke: Report) -> None:
    targets = {target["name"]: target for target in smoke["targets"]}
    ratio = targets["catch-up (--since all --no-follow) >= 1.5x a requests paging loop (json)"]
    assert ratio["measured"].endswith(" events/s)"), ratio  # measured, whatever the verdict
    assert smoke["settings"]["catchup_events"] == 2000
    assert "latency with --cursor-file: p99 < 1 ms" in targets


def test_every_target_of_the_issues_is_a_row(smoke: Report) -> None:
    """Issue 21's table and issue 18's two send targets, each a row with a figure and a verdict
    (whatever it is: a smoke run's figures mean little), or skipped with the reason."""
    targets = {target["name"]: target for target in smoke["targets"]}
    click = 'python -c "import click"'
    for name in (
        f'one-shot prismer-rt send C "x" <= 2.0x {click}',
        f"prismer-rt --help <= 1.3x {click}",
        f"prismer-rt --version <= 0.6x {click}",
        "listen over WS >= 3.0x the websockets sync client",
        "listen over WS piped >= 0.5x websocat piped",
        "listen over SSE >= 4.0x requests + sseclient-py",
        "catch-up (--since all --no-follow) >= 1.2x a requests paging loop (orjson)",
        "send, one conversation (server dialect) >= 5,000 commands/s",
        "send, 100 conversations (server dialect) >= 50,000 commands/s",
        "send, 100 conversations >= 0.4x websocat",
        "latency p99 < 250 µs (server write -> stdout line)",
        "peak RSS <= 40 MiB (4,000 events)",
        "RSS flat: 4,000 vs 400 events (<= +2 MiB)",
    ):
        target = targets[name]
        if target["measured"].startswith("skipped: "):
            assert target["ok"] is None, target
            continue
        assert isinstance(target["ok"], bool), target
        assert target["name"] in smoke["stdout"], name


def test_every_prismer_rt_figure_was_measured(smoke: Report) -> None:
    results = smoke["results"]
    for key in (
        "ws.prismer",
        "ws.prismer.pipe",
        "sse.prismer",
        "sse.prismer.pipe",
        "startup.help",
        "startup.version",
        "startup.send",
        "send.prismer",
        "send.one.prismer",
        "send.many.prismer",
        "catchup.prismer",
        "catchup.prismer.pipe",
        "catchup.prismer.cursor",
        "catchup.sync-json",
        "catchup.sync-orjson",
        "latency.prismer",
        "latency.prismer.p99",
        "latency.server",
        "latency.server.p99",
        "latency.cursor",
        "latency.cursor.p99",
        "memory.400",
        "memory.4000",
    ):
        assert results[key]["samples"], (key, results[key]["errors"])
        assert not results[key]["errors"], (key, results[key]["errors"])


@pytest.mark.parametrize(
    ("key", "tool"),
    [
        ("ws.websockets", "websockets"),
        ("ws.websocat", "websocat"),
        ("sse.curl", "curl"),
        ("sse.sseclient", "sseclient-py"),
        ("send.websocat", "websocat"),
        ("send.many.websocat", "websocat"),
    ],
)
def test_comparison_ran_or_was_skipped(smoke: Report, key: str, tool: str) -> None:
    row = smoke["results"][key]
    if row["skipped"]:
        pytest.skip(f"{tool}: {row['skipped']}")
    assert row["samples"], row["errors"]
