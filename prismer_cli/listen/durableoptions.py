"""The options of the durable mode (`--since`, `--cursor-file`, `--no-follow`), checked before
anything connects (docs/cli.md "Stored events")."""

from __future__ import annotations

from dataclasses import dataclass

from prismer_cli.errors import UsageError
from prismer_cli.listen.cursorfile import check_path

MAX_SEQ = 2**53 - 1  # the largest whole number a JSON number holds exactly (the server is Node)


@dataclass(frozen=True)
class DurableOptions:
    since: str = "now"  # now | all | SEQ
    cursor_file: str | None = None
    no_follow: bool = False

    @property
    def active(self) -> bool:
        return self.since != "now" or self.cursor_file is not None or self.no_follow

    def check(self) -> None:
        """Refuse a bad --since or --cursor-file (exit 2) before anything connects."""
        parse_since(self.since)
        if self.cursor_file is not None:
            check_path(self.cursor_file)


def parse_since(text: str) -> int | None:
    """`--since`: None for now, 0 for all, else the seq (a plain non-negative integer)."""
    if text == "now":
        return None
    if text == "all":
        return 0
    if text.isascii() and text.isdigit():
        if len(text) > len(str(MAX_SEQ)) or int(text) > MAX_SEQ:
            raise UsageError(
                f"--since {text} is past any seq an event log can have (at most {MAX_SEQ}): "
                "give a seq the log has, all or now"
            )
        return int(text)
    raise UsageError(f"--since takes a seq (a whole number), all or now, not {text!r}")
