"""What a listen prints: the filters of `--type`, `--conversation`, `--ignore-self`, `--match`,
shared by the live engine (engine.py) and the stored events of the durable mode (durable.py)."""

from __future__ import annotations

from dataclasses import dataclass

from prismer_cli.listen.matcher import Match


@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    conversations: frozenset[str] = frozenset()
    ignore_self: bool = False
    match: tuple[Match, ...] = ()  # --match: every one must hold
