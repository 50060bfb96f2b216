"""What the user sees of each hand-off: one stderr line per attempt, as `stripe listen` prints
one per delivery, and with --meta one record on stdout after the event:

    prismer-rt: 17:55:25 msg_1 POST http://127.0.0.1:8080/hook [200] 12 ms (attempt 1) {"ok":true}
    prismer-rt: 17:55:26 msg_2 exec [exit 1] 31 ms (attempt 1), again in 2 s

    {"type": "prismer-rt.forwarded", "payload": {"messageId", "url", "status", "ms", "attempt"}}
    {"type": "prismer-rt.forward-failed", "payload": {..., "reason"}}
    {"type": "prismer-rt.executed", "payload": {"messageId", "eventType", "seq", "status", "ms",
     "attempt"}}
    {"type": "prismer-rt.exec-failed", "payload": {..., "reason"}}
"""

from __future__ import annotations

import time
from typing import Any

from prismer_cli.handoff.deliver import Outcome
from prismer_cli.log import Log
from prismer_cli.output import Output

META = "prismer-rt."


class Report:
    def __init__(self, log: Log, out: Output, meta: bool) -> None:
        self.log = log
        self.out = out
        self.meta = meta

    def attempt(
        self, label: str, what: str, said: str, outcome: Outcome, attempt: int, wait: float | None
    ) -> None:
        """One line per attempt: time, id, what was done, the answer, ms, attempt, what next."""
        if self.log.verbosity < 0:
            return
        line = f"{time.strftime('%H:%M:%S')} {label} {what} [{said}] {outcome.ms} ms"
        line += f" (attempt {attempt})"
        if outcome.detail and said != outcome.detail:
            line += f" {outcome.detail}"
        if wait is not None:
            line += f", again in {wait:.3g} s"
        self.log.plain(line)

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """A --meta record on stdout, after the event it is about."""
        if self.meta:
            self.out.record({"type": META + kind, "payload": payload})
