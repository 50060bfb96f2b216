"""The systemd unit of examples/ and the README's, run as systemd would run their ExecStart
(issue 17, item 12): prismer-rt is the main process, so reload's SIGHUP reloads it and stop's
SIGTERM ends it with 143, which the unit declares a success; exit 2 alone means "fix it"."""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import env_for, wait_for_connections, wait_until
from tests.support.serverfixture import ServerFactory

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "examples" / "prismer-rt-listen.service"


def _service(text: str) -> dict[str, list[str]]:
    """The [Service] and [Unit] settings of a unit, each key with all its values."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    settings: dict[str, list[str]] = {}
    for name in ("Unit", "Service"):
        if parser.has_section(name):
            for key, value in parser.items(name):
                settings.setdefault(key, []).append(value)
    return settings


def _readme_unit() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Cron and scripts", 1)[1]
    return section.split("```ini\n", 1)[1].split("```", 1)[0]


UNITS = {"example": UNIT.read_text(), "readme": _readme_unit()}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_unit_declares_what_its_exits_mean(name: str) -> None:
    settings = _service(UNITS[name])
    assert settings["SuccessExitStatus"] == ["143"]
    assert settings["RestartPreventExitStatus"] == ["2 3"]  # not 75: that one passes
    assert settings["Restart"] == ["always"]
    assert not any("network-online" in v for values in settings.values() for v in values)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_reload_and_stop_reach_prismer_rt_itself(
    server_factory: ServerFactory, tmp_path: Path, name: str
) -> None:
    """ExecStart as systemd runs it: $MAINPID is the process it starts; `kill -HUP $MAINPID`
    must reload listen (not kill a shell in front of it), SIGTERM must end it with 143."""
    server = server_factory(dialect="server", tokens=["alice"])
    (command,) = _service(UNITS[name])["ExecStart"]
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    launcher = bin_dir / "prismer-rt"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m prismer_cli "$@"\n')
    handler = bin_dir / "handler"
    handler.write_text(f'#!/bin/sh\nexec cat >> "{state}/handled.ndjson"\n')
    for script in (launcher, handler):
        script.chmod(0o755)
    env = env_for(server.url, "alice", STATE_DIRECTORY=str(state))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PRISMER_TOKEN_FILE"] = ""  # %h is systemd's; the token comes from PRISMER_TOKEN
    main = subprocess.Popen(
        shlex.split(command.replace("%h", str(tmp_path))),
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        start_new_session=True,  # its own process group: what it started can be reaped with it
    )
    try:
        wait_for_connections(server, 1, timeout=15)
        main.send_signal(signal.SIGHUP)  # systemctl reload: kill -HUP $MAINPID
        time.sleep(0.5)
        assert main.poll() is None, "SIGHUP ended the service's main process"
        server.emit("task.updated", {"taskId": "t1"}, to=None)
        output = [state / "events.ndjson", state / "handled.ndjson"]
        wait_until(lambda: any(p.exists() and p.read_bytes() for p in output), timeout=10)
        main.send_signal(signal.SIGTERM)  # systemctl stop
        assert main.wait(15) == 143
    finally:
        with contextlib.suppress(ProcessLookupError):  # a shell's children outlive it
            os.killpg(main.pid, signal.SIGKILL)
        main.communicate()
    assert (state / "inbox.cursor").exists()
