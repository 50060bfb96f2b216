"""Starting and stopping the server process: option checks, binding, the listening line,
signals, and one-line error messages instead of tracebacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from prismer_cli.server.options import ServerOptions, problem_with
from prismer_cli.server.redaction import redact

PROG = "prismer-rt serve"
EXIT_OK, EXIT_USAGE, EXIT_CONNECT = 0, 2, 4
SHUTDOWN_TIMEOUT = 2.0


def say(message: str) -> None:
    print(f"{PROG}: {redact(message)}", file=sys.stderr, flush=True)


class OneLineHandler(logging.Handler):
    """Library errors as one redacted line on stderr: no traceback ever reaches the user."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = redact(record.getMessage()).splitlines() or [""]
        detail = f" ({record.exc_info[1].__class__.__name__})" if record.exc_info else ""
        say(f"{lines[0]}{detail}")


def quiet_library_logs() -> None:
    handler = OneLineHandler(logging.WARNING)
    for name in ("aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def run(options: ServerOptions) -> int:
    from aiohttp import web

    from prismer_cli.server.app import CONTEXT, build_app

    stop = _stop_on_signals()  # before the listening line: a SIGTERM right after it is clean
    app = build_app(options)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        say(f"cannot listen on {url_host(options.host)}:{options.port}: {exc.strerror or exc}")
        return EXIT_CONNECT
    port = runner.addresses[0][1]
    say(f"listening on http://{url_host(options.host)}:{port} (dialect {options.dialect})")
    await stop.wait()
    app[CONTEXT].stopping.set()
    await runner.cleanup()
    return EXIT_OK


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows event loops, nor outside the main thread.
        with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    return stop


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_blocking(options: ServerOptions) -> int:
    # Until the event loop takes over, SIGTERM stops the start-up like Ctrl-C: exit 0.
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _interrupt)
    problem = problem_with(options)
    if problem is not None:
        say(problem)
        return EXIT_USAGE
    quiet_library_logs()
    try:
        return asyncio.run(run(options))
    except KeyboardInterrupt:
        return EXIT_OK
