"""The console script. `--version` is answered before the CLI framework is imported, which
takes it from ~120 ms to ~40 ms (README "Benchmark"); everything else goes to cli.py."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from prismer_cli import __version__

        sys.stdout.write(f"prismer-rt {__version__}\n")
        return
    from prismer_cli.cli import main as run_cli

    run_cli()
