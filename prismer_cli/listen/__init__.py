"""listen and subscribe: the listen engine and its parts, one event a line on stdout.

- engine.py: the engine (`listen`, `Listener`, `ListenOptions`): connections one after another,
  the hot loop that prints frames, acks after each flush;
- filters.py: `Filters` (--type, --conversation, --ignore-self, --match) as one predicate for
  live and stored events, with matcher.py for --match PATH=VALUE;
- dedupe.py: de-duplication with bounded memory; failures.py: connection failures on stderr;
- hooks.py: the seam (`Stored`) through which the engine calls the durable mode, so that the
  dependency runs one way (durable.py implements it, engine.py takes one);
- durable.py: `--since`, `--cursor-file`, `--no-follow` (options checked in durableoptions.py),
  over eventlog.py (the server's event
  log, read in pages), catchup.py (the stored events after the cursor), placing.py (the server
  dialect's live events in the log), gaps.py (the docs dialect's skipped seqs), saver.py (when
  the cursor is saved) and cursorfile.py (the cursor file: lock, atomic save); cron.py runs
  `--no-follow`.

The CLI (prismer_cli/cli/listen.py) imports what it needs from the modules themselves; the
names below are also here, each imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prismer_cli.listen.cron import no_follow
    from prismer_cli.listen.durable import Durable
    from prismer_cli.listen.durableoptions import DurableOptions, parse_since
    from prismer_cli.listen.engine import Listener, ListenOptions, listen
    from prismer_cli.listen.filters import Filters
    from prismer_cli.listen.matcher import Match

# Each name and its module, imported on first use: a plain listen never loads durable.py (nor
# requests, over which its event log is read), and a module that wants one part (the view's
# --format takes matcher.py) does not load the engine.
_HOMES = {
    "Durable": "durable",
    "DurableOptions": "durableoptions",
    "no_follow": "cron",
    "parse_since": "durableoptions",
    "Listener": "engine",
    "ListenOptions": "engine",
    "listen": "engine",
    "Filters": "filters",
    "Match": "matcher",
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Durable",
    "DurableOptions",
    "Filters",
    "ListenOptions",
    "Listener",
    "Match",
    "listen",
    "no_follow",
    "parse_since",
]
