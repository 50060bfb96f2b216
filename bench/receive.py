"""Receive sections: `prismer-rt listen` over WebSocket and over SSE, against the clients a user
would write instead (bench/clients.py), websocat and curl; each run to /dev/null and into a pipe.
The first pipe run of prismer-rt must hold every event exactly once, in order."""

from __future__ import annotations

from environment import HERE, WEBSOCAT_MISSING
from harness import Bench, numbered_frames, run_client


def check_events(output: bytes, count: int) -> tuple[bool, str]:
    """Every event exactly once and in order: seq 1..count, one valid envelope per line."""
    frames, wrong = numbered_frames(
        output, count, "events", "sequence numbers out of order or missing"
    )
    if wrong:
        return False, wrong
    for number, frame in enumerate(frames, 1):
        if frame.get("type") != "message.new" or frame["payload"].get("seq") != number:
            return False, f"line {number} is not event {number}"
    return True, f"{count} events, each once, in order"


def bench_ws(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    n, token = s.events, f"stream-{s.events}"
    env = bench.prismer_env(token)
    listen = [t.prismer_rt, "listen", "--count", str(n)]
    cases = bench.receive_cases(
        "ws", "ws.prismer", "prismer-rt listen", listen, env, n, keep_pipe=True
    )
    # As in many container images: Python's stdout is then unbuffered.
    unbuffered = {**env, "PYTHONUNBUFFERED": "1"}
    cases.append(
        (
            r.row(
                "ws",
                "ws.prismer.unbuffered",
                "prismer-rt listen > /dev/null, PYTHONUNBUFFERED=1",
                "events/s",
            ),
            lambda i: run_client(bench.live, listen, unbuffered, timeout=max(120, n / 1e3)),
            n,
        )
    )
    url = bench.url("ws", "/ws", token)
    clients = str(HERE / "clients.py")
    cmd = [t.python, clients, "websockets", url, str(n)] if t.websockets else None
    cases += bench.receive_cases(
        "ws",
        "ws.websockets",
        "websockets sync client",
        cmd,
        bench.env,
        n,
        missing="websockets is not installed",
    )
    m = s.wsclient_events
    label = "websocket-client recv() loop, defaults" + (f" ({m:,} events)" if m != n else "")
    url_m = bench.url("ws", "/ws", f"stream-{m}")
    cmd = [t.python, clients, "websocket-client", url_m, str(m)] if t.websocket_client else None
    cases += bench.receive_cases(
        "ws",
        "ws.websocket-client",
        label,
        cmd,
        bench.env,
        m,
        missing="websocket-client is not installed",
    )
    cmd = [t.websocat, "-t", "-U", url] if t.websocat else None
    cases += bench.receive_cases(
        "ws", "ws.websocat", "websocat -t -U", cmd, bench.env, n, missing=WEBSOCAT_MISSING
    )
    bench.round_robin("ws", cases, check_key="ws.prismer.pipe", count=n, check=check_events)


def bench_sse(bench: Bench) -> None:
    s, t = bench.s, bench.tools
    n, token = s.events, f"stream-{s.events}"
    env = bench.prismer_env(token)
    listen = [t.prismer_rt, "listen", "--transport", "sse", "--count", str(n)]
    cases = bench.receive_cases(
        "sse",
        "sse.prismer",
        "prismer-rt listen --transport sse",
        listen,
        env,
        n,
        keep_pipe=True,
    )
    url = bench.url("http", "/api/im/events/stream", token)
    cmd = [t.python, str(HERE / "clients.py"), "sseclient", url, str(n)] if t.sseclient else None
    cases += bench.receive_cases(
        "sse",
        "sse.sseclient",
        "requests + sseclient-py",
        cmd,
        bench.env,
        n,
        missing="sseclient-py is not installed",
    )
    cmd = [t.curl, "-sSN", url] if t.curl else None
    cases += bench.receive_cases(
        "sse", "sse.curl", "curl -N", cmd, bench.env, n, missing="curl not found"
    )
    bench.round_robin("sse", cases, check_key="sse.prismer.pipe", count=n, check=check_events)
