"""Run a command from a small, fresh process and report its peak RSS.

    python bench/maxrss.py OUT_FILE COMMAND [ARG...]

Writes {"rc": exit status, "maxrss_kib": peak resident set size} as JSON to OUT_FILE.
Why a helper process: on Linux, ru_maxrss survives fork and exec, so a child forked from a
large process (the benchmark, holding a captured output) reports at least its parent's size.
Forked from this ~10 MB process instead, the figure is the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, command = argv[0], argv[1:]
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"rc": proc.returncode, "maxrss_kib": usage.ru_maxrss}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
