"""The quality gates, listed once: `make lint` runs them all, and tests/test_quality.py runs each
as a test, so the Makefile and the test command can never disagree about what "clean" means.

    python -m tools.check          run every gate from the repository root; exit 1 if one fails
    python -m tools.check mypy     run only the gates named

What each tool checks is configured in pyproject.toml (`[tool.ruff]`, `[tool.mypy] files`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
GATES: Final[dict[str, tuple[str, ...]]] = {
    "ruff-check": ("ruff", "check", "."),
    "ruff-format": ("ruff", "format", "--check", "."),
    "mypy": ("mypy",),  # strict, over the files pyproject.toml lists
}


def command(gate: str) -> list[str]:
    """The gate's command, run with this interpreter so the venv's tools are the ones used."""
    return [sys.executable, "-m", *GATES[gate]]


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(GATES)
    unknown = [name for name in names if name not in GATES]
    if unknown:
        print(f"unknown gate: {', '.join(unknown)} (gates: {', '.join(GATES)})", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"$ {' '.join(GATES[name])}", flush=True)
        if subprocess.run(command(name), cwd=ROOT, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
