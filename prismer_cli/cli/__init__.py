"""The `prismer-rt` command line (docs/cli.md): thin commands over the engines.

- app.py: the Typer app, its global options and the registration of every command;
- options.py: the option groups (connection options, listen's filters), each declared once;
- listen.py, send.py, config.py, serve.py: one module per command group;
- endpoint.py: the connection options resolved into an Endpoint and the timers;
- run.py: the one place where exceptions become messages and exit statuses.

`main` answers `--version` before the CLI framework is imported, which takes it from ~120 ms
to ~40 ms (README "Benchmark").
"""

from __future__ import annotations

import sys


def main() -> None:
    """The console script."""
    if sys.argv[1:] == ["--version"]:
        from prismer_cli import __version__

        sys.stdout.write(f"prismer-rt {__version__}\n")
        return
    from prismer_cli.cli.app import main as run_cli

    run_cli()
