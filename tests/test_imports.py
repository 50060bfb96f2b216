"""Each command imports only what it needs (issue 21): the real command, run with
PYTHONPROFILEIMPORTTIME=1, against the local server; the modules it imported are read from
stderr and none of those the command in hand has no use for may be among them.

A one-shot WebSocket `send` (a token from the environment) makes no REST call and refreshes
nothing: no requests, no SSE, no durable listening, no token store, no stand-in server. A plain
`listen` neither. `--help` opens no connection at all; `--version` does not even load the CLI
framework. The figures behind it: README "Benchmark" (requests alone is ~60 ms).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.cli import Background, Result, env_for, run, wait_for_connections
from tests.support.serverfixture import ServerProcess, running_server

IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)

# Third-party and standard modules that only REST, SSE or the stand-in server use.
NETWORK_EXTRAS = ("requests", "urllib3", "sseclient", "aiohttp", "charset_normalizer", "idna")
# The project's own modules that a plain WebSocket command does not use.
NOT_FOR_WEBSOCKET = (
    "prismer_cli.server",  # the stand-in server (its package, its options, its app)
    "prismer_cli.transport.sse",
    "prismer_cli.transport.rest",
    "prismer_cli.auth.stores",  # the token comes from the environment: nothing to save
    "prismer_cli.auth.tomledit",
    "prismer_cli.listen.durable",  # --since, --cursor-file, --no-follow
    "prismer_cli.listen.eventlog",
    "prismer_cli.listen.cursorfile",
)
CLI_FRAMEWORK = ("typer", "click", "rich")
# What a plain ws:// URL without a proxy does not need (transport/wsupgrade.py, ~15 ms).
NOT_FOR_PLAIN_WS = ("websocket", "ssl", "_ssl", "hashlib", "logging", "encodings.idna")


def imported(result: Result) -> set[str]:
    names = set(IMPORTED.findall(result.err))
    assert "prismer_cli" in names, result.err[-2000:]  # the profile was written at all
    return names


def loaded(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden modules (or their submodules) among the names."""
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("imports"), dialect="docs") as started:
        yield started


def profiled(server: ServerProcess) -> dict[str, str]:
    return untraced(env_for(server.url, "imports-token", PYTHONPROFILEIMPORTTIME="1"))


def untraced(env: dict[str, str]) -> dict[str, str]:
    """The command as a user runs it: not under CI's coverage (`--cov` starts coverage in each
    subprocess through these variables, and coverage imports hashlib, among others)."""
    for name in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"):
        env.pop(name, None)
    return env


def test_a_one_shot_send_imports_no_rest_sse_store_or_server(server: ServerProcess) -> None:
    result = run("send", "conv_imports", "hello", env=profiled(server))
    assert result.code == 0, result.err[-2000:]
    assert result.lines[0]["ok"] is True
    names = imported(result)
    assert "prismer_cli.transport.wsupgrade" in names  # it did go over a WebSocket
    assert loaded(names, NETWORK_EXTRAS + NOT_FOR_WEBSOCKET) == []
    # a plain ws:// URL is upgraded by hand: no websocket-client, no TLS, no IDNA codec
    assert loaded(names, NOT_FOR_PLAIN_WS) == []
    assert loaded(names, ("tempfile",)) == []  # only --retry-file writes a temporary file
    # the other commands are not even built, and the listen engine is not loaded
    listen_only = ("prismer_cli.cli.listen", "prismer_cli.cli.listenoptions", "prismer_cli.listen")
    assert loaded(names, listen_only) == []


def test_a_plain_listen_imports_no_rest_sse_store_durable_or_server(
    server: ServerProcess,
) -> None:
    before = len([r for r in server.log() if r["kind"] == "ws_connect"])
    listener = Background("listen", "--count", "1", env=profiled(server))
    wait_for_connections(server, before + 1)
    server.emit("task.updated", {"taskId": "t-imports"})
    result = listener.wait()
    assert result.code == 0, result.err[-2000:]
    assert result.lines[0]["payload"]["taskId"] == "t-imports"
    names = imported(result)
    assert loaded(names, NETWORK_EXTRAS + NOT_FOR_WEBSOCKET + NOT_FOR_PLAIN_WS) == []


def test_help_opens_no_connection_and_loads_no_network_module() -> None:
    result = run("--help", env=untraced(env_for(None, None, PYTHONPROFILEIMPORTTIME="1")))
    assert result.code == 0 and "Commands:" in result.out
    names = imported(result)
    assert loaded(names, CLI_FRAMEWORK) == []  # the generated text (cli/helptext.py)
    assert loaded(names, (*NETWORK_EXTRAS, "websocket", "orjson", "ssl", "rich")) == []
    assert loaded(names, ("prismer_cli.transport", "prismer_cli.send", "prismer_cli.auth")) == []
    assert loaded(names, ("prismer_cli.server.app", "prismer_cli.server.state")) == []


def test_version_does_not_load_the_cli_framework() -> None:
    result = run("--version", env=untraced(env_for(None, None, PYTHONPROFILEIMPORTTIME="1")))
    assert result.code == 0 and result.out.startswith("prismer-rt ")
    assert loaded(imported(result), CLI_FRAMEWORK) == []


def test_the_garbage_collector_is_on_for_the_commands_work() -> None:
    """main() turns the collector off while the program starts (start-up makes no garbage);
    the command itself (a listen that runs for days, serve) runs with it on again."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['prismer-rt', 'config', 'show']\n"
        "import prismer_cli.cli.run as run\n"
        "execute = run.execute\n"
        "def seen(job, g):\n"
        "    sys.stderr.write(f'collecting: {gc.isenabled()}\\n')\n"
        "    return execute(job, g)\n"
        "run.execute = seen\n"
        "from prismer_cli.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_for(None, None)
    )
    assert proc.returncode == 0, proc.stderr
    assert "collecting: True" in proc.stderr.splitlines()


@pytest.mark.parametrize("columns", ["", "80", "120", "79", "60"])
def test_help_is_the_frameworks_text_at_any_width(columns: str) -> None:
    """`--help` prints exactly what the CLI framework prints: from the generated text at 80
    columns or more (without loading the framework), from the framework on a narrower one."""
    env = env_for(None, None, PYTHONPROFILEIMPORTTIME="1", COLUMNS=columns)
    for flag in ("--help", "-h"):
        result = run(flag, env=env)
        framework = subprocess.run(
            [sys.executable, "-c", FRAMEWORK_ONLY, flag], capture_output=True, text=True, env=env
        )
        assert result.code == framework.returncode == 0
        assert result.out == framework.stdout
        typer_loaded = "typer" in imported(result)
        assert typer_loaded == (columns in ("79", "60")), columns


# The app itself, as prismer_cli.cli.main runs it when it does not answer by itself.
FRAMEWORK_ONLY = (
    "import sys\nsys.argv[0] = 'prismer-rt'\nfrom prismer_cli.cli.app import main\nmain()\n"
)
