"""--forward-to and --exec: each event listen prints, handed to a handler that must accept it.

- hand.py: `Handoff`, the engine's hand (listen/hooks.py `Hand`): which handlers an event goes
  to, the attempts and waits between them, and what a handler that never accepts costs (skipped
  without a cursor file; the run ends before the cursor passes it with one);
- webhook.py: the body, headers and signature exactly as Prismer Cloud's webhooks have them;
- lookups.py: the sender and conversation for the body, looked up and kept;
- deliver.py: one POST to --forward-to, and an attempt's `Outcome`;
- execute.py: one run of --exec's command, its environment without the token;
- report.py: one stderr line per attempt, --meta records.

It imports nothing of the listen engine: the CLI hands a `Handoff` to it.
"""

from __future__ import annotations

from prismer_cli.handoff.deliver import check_url
from prismer_cli.handoff.hand import Context, Handoff, HandoffOptions

__all__ = ["Context", "Handoff", "HandoffOptions", "check_url"]
