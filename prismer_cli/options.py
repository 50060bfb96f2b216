"""The connection options as the command line gave them, before or after the subcommand.

Kept apart from config.py (which resolves them against the environment and files) so that
the CLI can declare them without importing the resolver: `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CommandLine:
    url: str | None = None
    token: str | None = None
    token_file: str | None = None
    transport: str | None = None
    dialect: str | None = None
    profile: str | None = None
    verbose: bool = False
    quiet: bool = False

    def merged(self, other: CommandLine) -> CommandLine:
        """`other` (a command's own options) over these (those given before the subcommand)."""
        given = {k: v for k, v in vars(other).items() if v not in (None, False)}
        return replace(self, **given)
