"""Running a command: the one place where exceptions become messages and exit statuses."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import typer

from prismer_cli import signals
from prismer_cli.config import CommandLine
from prismer_cli.errors import ExitStatus, Interrupted, PrismerError
from prismer_cli.log import Log


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM for the commands other than listen, as SIGINT's KeyboardInterrupt."""
    raise Interrupted(signum)


def execute(job: Callable[[Log], ExitStatus], g: CommandLine) -> NoReturn:
    """Run a command; turn every expected failure into a message and an exit status."""
    from prismer_cli import stdio
    from prismer_cli.output import OutputClosed, OutputFailed, silence_stdout

    log = Log(verbosity=-1 if g.quiet else (1 if g.verbose else 0))
    if g.trace:
        from prismer_cli.transport.trace import Tracer

        log.trace = Tracer()
    if not signals.noting():  # listen notes signals as flags (prismer_cli/signals.py)
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = job(log)
    except OutputClosed:
        silence_stdout()
        status = ExitStatus.OK
    except OutputFailed as exc:  # said once, made exit 2 by stdio.finish (docs/cli.md)
        stdio.write_error(exc.error)
        silence_stdout()
        status = ExitStatus.OK
    except Interrupted as exc:
        status = exc.status
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except PrismerError as exc:
        log.error(str(exc))
        status = exc.status
    except Exception as exc:  # the last line of defence: a message, never a traceback
        if os.environ.get("PRISMER_RT_DEBUG"):
            raise
        log.error(f"unexpected {type(exc).__name__}: {exc} (set PRISMER_RT_DEBUG=1 for details)")
        status = ExitStatus.ERROR
    raise typer.Exit(int(status))
