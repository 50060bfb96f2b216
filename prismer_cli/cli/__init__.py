"""The `prismer-rt` command line (docs/cli.md): thin commands over the engines.

- app.py: the Typer app, its global options and the registration of every command;
- options.py: the option groups (connection options, listen's filters), each declared once;
- listen.py, send.py, config.py, register.py, whoami.py: one module per command group (`serve`
  is declared by the stand-in server itself, prismer_cli/server/command.py);
- endpoint.py: the connection options resolved into an Endpoint and the timers;
- run.py: the one place where exceptions become messages and exit statuses.

`main` answers `--version` before the CLI framework is imported, which takes it from ~120 ms
to ~40 ms (README "Benchmark").
"""

from __future__ import annotations

import errno
import sys


def main() -> None:
    """The console script."""
    from prismer_cli import signals, stdio

    stdio.guard()  # first: a closed fd 0, 1 or 2 must not be taken by the next file opened
    signals.install()  # then at once: no signal may find the default action (signals.py)
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
    raise SystemExit(stdio.finish(status))


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
