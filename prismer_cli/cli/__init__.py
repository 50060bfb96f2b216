"""The `prismer-rt` command line (docs/cli.md): thin commands over the engines.

- app.py: the Typer app, its global options and the registration of every command;
- options.py: the option groups (connection options, listen's filters), each declared once;
- listen.py, send.py, config.py, register.py, whoami.py: one module per command group (`serve`
  is declared by the stand-in server itself, prismer_cli/server/command.py);
- endpoint.py: the connection options resolved into an Endpoint and the timers;
- run.py: the one place where exceptions become messages and exit statuses.

`main` answers `--version` before the CLI framework is imported, which takes it from ~120 ms
to ~40 ms (README "Benchmark"). The cyclic garbage collector is off while the program starts:
start-up makes no garbage, only objects that live until the end, and scanning them again and
again as they pile up cost ~5 ms; the group's callback (app.py) sets them aside for good
(gc.freeze) and turns the collector on for the command's own work. At the end they are set
aside again, so the interpreter's last collection does not walk them all (~7 ms more).
"""

from __future__ import annotations

import errno
import gc
import sys


def start_collecting() -> None:
    """The program has started: what exists now lives until the end (gc.freeze); collect
    from here on. Only if main() turned the collector off (not in a test's process)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main() -> None:
    """The console script."""
    gc.disable()  # turned on again by start_collecting(), once the command is parsed
    from prismer_cli import stdio

    stdio.guard()
    problem = _not_text(sys.argv[1:])
    if problem:
        sys.stderr.write(f"prismer-rt: error: {problem}\n")
        raise SystemExit(stdio.finish(2))
    status: int = 0
    try:
        if sys.argv[1:] == ["--version"]:
            from prismer_cli import __version__

            sys.stdout.write(f"prismer-rt {__version__}\n")
        else:
            from prismer_cli.cli.app import main as run_cli

            run_cli()
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except OSError as exc:  # the CLI framework writing help, usage or the version
        if exc.errno != errno.EPIPE:
            stdio.write_error(exc)
        status = 2 if exc.errno != errno.EPIPE else 0
    status = stdio.finish(status)
    gc.freeze()  # the interpreter's last collection need not walk what is left
    raise SystemExit(status)


def _not_text(args: list[str]) -> str | None:
    """What is wrong with the first argument that is not UTF-8 text (Python hands such bytes
    over as lone surrogates): messages and ids are text, so it is refused (docs/cli.md
    "Hygiene"), never sent mangled. The value is shown unless it is a token."""
    import os

    for number, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            secret = arg.startswith("--token=") or (number > 1 and args[number - 2] == "--token")
            shown = "" if secret else f": {os.fsencode(arg).decode('utf-8', 'backslashreplace')}"
            return f"argument {number} of the command line is not UTF-8 text{shown}"
    return None
