"""Every test runs with HOME and XDG_CONFIG_HOME in a temporary folder and no Prismer variables,
so no real configuration or token is ever read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prismer_cli import envnames
from tests.support.cli import Background
from tests.support.terminal import Terminal

pytest_plugins = ["tests.support.serverfixture"]  # the server_factory fixture

SCRUBBED = (*envnames.SETTINGS, *envnames.PROXIES, "NO_COLOR")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME for each test."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield home
    Background.reap()
    Terminal.reap()
