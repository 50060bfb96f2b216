"""The quality gates are part of the test command: each gate of tools/check.py (ruff lint, ruff
format, mypy --strict) is one test here, and `make lint` runs the same list."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import check

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = {".ci", ".git", ".venv", "build", "dist"}


@pytest.mark.parametrize("gate", list(check.GATES))
def test_quality_gate(gate: str) -> None:
    """The gate passes on the whole project (configuration in pyproject.toml)."""
    proc = subprocess.run(check.command(gate), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_checks_every_python_folder() -> None:
    """mypy's `files` names every top-level folder that holds Python: tests and bench too. A
    virtual environment in the checkout, whatever its name (`venv`, `env`), is not source."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    checked = set(config["tool"]["mypy"]["files"])
    folders = {
        path.relative_to(ROOT).parts[0]
        for path in ROOT.glob("*/**/*.py")
        if path.relative_to(ROOT).parts[0] not in NOT_SOURCE
        and not path.relative_to(ROOT).parts[0].endswith(".egg-info")
    }
    folders = {folder for folder in folders if not (ROOT / folder / "pyvenv.cfg").exists()}
    assert folders <= checked, sorted(folders - checked)


def test_ci_runs_the_readme_test_command_with_coverage() -> None:
    """.ci/run ends with the README's test command, verbatim, and has it report coverage with
    the subprocesses measured."""
    command = "pip install -e '.[dev]' && pytest"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"```sh\n{command}\n```" in readme
    assert ci.rstrip("\n").splitlines()[-1] == command
    assert re.search(r"^export PYTEST_ADDOPTS=\"--cov\b", ci, re.M)
    coverage = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "subprocess" in coverage["tool"]["coverage"]["run"]["patch"]


def test_make_runs_the_same_gates() -> None:
    """`make lint` (and so `make check`) runs tools.check, the list these tests run."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None, "no lint target in the Makefile"
    assert "-m tools.check" in recipe.group(1)
    assert re.search(r"^check:.*\blint\b", makefile, re.M)
