"""Configuration: where the URL and the token come from, checked through the real command.

Precedence, highest first: command line, environment, the profile of prismer-rt's config file,
the official SDK's ``~/.prismer/config.toml``, defaults. Which token and URL a run used is proved
by the local server: `listen --count 1` only ends if it connected to that server as that user
(the one event is sent to that user alone). Every other candidate URL is a closed port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prismer_cli.config import DEFAULT_URL, CommandLine, resolve
from prismer_cli.errors import UsageError
from prismer_cli.server.users import user_id_for_token
from tests.support.cli import FAST, Background, Result, run
from tests.support.serverfixture import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An open-mode docs server: any token is a user of its own."""
    server = start_server(tmp_path_factory.mktemp("config-serve"), dialect="docs")
    try:
        yield server
    finally:
        server.stop()


def new_token(label: str) -> str:
    return f"{label}-token-{uuid.uuid4().hex}"


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment (private HOME, no Prismer variables) with fast timers."""
    env = dict(os.environ)
    env.update(FAST)
    env.update(extra)
    return env


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def config_file(home: Path, text: str, mode: int = 0o600) -> Path:
    return write(home / ".config" / "prismer-rt" / "config.toml", text, mode)


def sdk_file(home: Path, token: str | None, url: str | None, mode: int = 0o644) -> Path:
    """~/.prismer/config.toml as `prismer-py register` writes it (0644)."""
    text = ""
    if url is not None:
        text += f'[default]\nbase_url = "{url}"\n'
    if token is not None:
        text += f'[auth]\nim_token = "{token}"\n'
    return write(home / ".prismer" / "config.toml", text, mode)


def assert_clean(result: Result, *tokens: str) -> None:
    for token in tokens:
        assert token not in result.out and token not in result.err, token
    assert "Traceback" not in result.err, result.err


def listen_once(
    server: ServerProcess,
    expected_token: str,
    *args: str,
    env: dict[str, str],
    stdin: bytes | None = None,
) -> Result:
    """Run `prismer-rt ARGS`; send one event to the user of `expected_token` once connected.

    The run ends with exit 0 and that event only if it connected to this server as that user.
    """
    user = user_id_for_token(expected_token)
    before = {r["conn"] for r in server.log() if r["kind"] == "ws_connect"}
    bg = Background(
        *args, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL
    )
    try:
        if stdin is not None:
            assert bg.proc.stdin is not None
            bg.proc.stdin.write(stdin)
            bg.proc.stdin.flush()  # wait() closes it
        end = time.monotonic() + 10
        while time.monotonic() < end and bg.proc.poll() is None:
            new = [r for r in server.log() if r["kind"] == "ws_connect" and r["conn"] not in before]
            if new:
                assert new[0]["user"] == user, "connected with another token"
                server.emit("task.updated", {"taskId": "t-config", "status": "done"}, to=user)
                break
            time.sleep(0.02)
        result = bg.wait(10)
    finally:
        bg.kill()
    return result


def listen_args(*extra: str) -> list[str]:
    return ["listen", "--count", "1", "--timeout", "8", "--no-reconnect", *extra]


def assert_got_event(result: Result) -> None:
    assert result.code == 0, result.err
    [event] = result.lines
    assert event["payload"]["taskId"] == "t-config"


# ── precedence, through the command ──────────────────────────────────────

LEVELS = ("cli", "env", "profile", "sdk")


@pytest.mark.parametrize("winner", LEVELS)
def test_precedence_through_the_command(
    server: ServerProcess, isolated_home: Path, tmp_path: Path, winner: str
) -> None:
    """The highest level that is set decides both the URL and the token the command uses."""
    tokens = {level: new_token(level) for level in LEVELS}
    urls = {level: closed_url() for level in LEVELS}
    urls[winner] = server.url
    present = LEVELS[LEVELS.index(winner) :]  # the winner and every level below it
    args = listen_args()
    env = clean_env()
    if "cli" in present:
        token_file = write(tmp_path / "token", tokens["cli"] + "\n")
        args += ["--url", urls["cli"], "--token-file", str(token_file)]
    if "env" in present:
        env.update(PRISMER_URL=urls["env"], PRISMER_TOKEN=tokens["env"])
    if "profile" in present:
        config_file(
            isolated_home,
            f'url = "{closed_url()}"\ntoken = "{new_token("top")}"\n'
            f'[profiles.work]\nurl = "{urls["profile"]}"\ntoken = "{tokens["profile"]}"\n',
        )
        env["PRISMER_PROFILE"] = "work"
    if "sdk" in present:
        sdk_file(isolated_home, tokens["sdk"], urls["sdk"])
    result = listen_once(server, tokens[winner], *args, env=env)
    assert_clean(result, *tokens.values())
    assert_got_event(result)
    if winner == "sdk":  # written 0644 by prismer-py: a warning, not a refusal
        assert "chmod 600" in result.err
    else:
        assert result.err == ""


def test_sdk_base_url_and_agent_token(server: ServerProcess, isolated_home: Path) -> None:
    """PRISMER_BASE_URL and AGENT_TOKEN, as the official SDKs and the page's scripts use them."""
    token = new_token("agent")
    env = clean_env(PRISMER_BASE_URL=server.url, AGENT_TOKEN=token)
    sdk_file(isolated_home, new_token("sdk"), closed_url())
    result = listen_once(server, token, *listen_args(), env=env)
    assert_clean(result, token)
    assert_got_event(result)


def test_default_profile_is_the_top_level(server: ServerProcess, isolated_home: Path) -> None:
    """Without --profile the config file's top-level keys are used; a profile overrides them."""
    top, work = new_token("top"), new_token("work")
    config_file(
        isolated_home,
        f'url = "{server.url}"\ntoken = "{top}"\n[profiles.work]\ntoken = "{work}"\n',
    )
    result = listen_once(server, top, *listen_args(), env=clean_env())
    assert_got_event(result)
    # the profile keeps the top-level url and overrides the token only
    result = listen_once(server, work, *listen_args("--profile", "work"), env=clean_env())
    assert_clean(result, top, work)
    assert_got_event(result)


# ── options before or after the subcommand ───────────────────────────────


@pytest.mark.parametrize("where", ["before", "after", "mixed", "after-wins"], ids=lambda w: str(w))
def test_connection_options_before_or_after(
    server: ServerProcess, tmp_path: Path, where: str
) -> None:
    """`prismer-rt --url U listen` and `prismer-rt listen --url U` alike."""
    token = new_token("opts")
    token_file = str(write(tmp_path / "token", token))
    url_opts = ["--url", server.url]
    token_opts = ["--token-file", token_file]
    if where == "before":
        args = [*url_opts, *token_opts, *listen_args()]
    elif where == "after":
        args = [*listen_args(), *url_opts, *token_opts]
    elif where == "mixed":
        args = [*url_opts, *listen_args(), *token_opts]
    else:  # the subcommand's own option wins over the one before it
        args = ["--url", closed_url(), *listen_args(), *url_opts, *token_opts]
    result = listen_once(server, token, *args, env=clean_env())
    assert_clean(result, token)
    assert_got_event(result)


# ── files holding tokens ─────────────────────────────────────────────────


def test_token_file_readable_by_others_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    """A token file with mode 0644 is refused with a clear message, exit 2, nothing connects."""
    token = new_token("open")
    path = write(tmp_path / "token", token, 0o644)
    connects = len([r for r in server.log() if r["kind"] == "ws_connect"])
    for args in (
        ["send", "--url", server.url, "--token-file", str(path), "c1", "hi"],
        ["--token-file", str(path), "config", "show"],
    ):
        result = run(*args, env=clean_env(), timeout=15)
        assert result.code == 2, result.err
        assert_clean(result, token)
        assert "0644" in result.err and f"chmod 600 {path}" in result.err
        assert len(result.err.strip().splitlines()) == 1
    assert len([r for r in server.log() if r["kind"] == "ws_connect"]) == connects


def test_config_file_with_token_readable_by_others_is_refused(isolated_home: Path) -> None:
    """prismer-rt's config file holding a token with mode 0640 is refused; without one, fine."""
    token = new_token("cfg")
    path = config_file(isolated_home, f'url = "http://127.0.0.1:1"\ntoken = "{token}"\n', 0o640)
    result = run("config", "show", env=clean_env(), timeout=15)
    assert result.code == 2
    assert_clean(result, token)
    assert "0640" in result.err and f"chmod 600 {path}" in result.err
    # a token from elsewhere: the file's token is not read, so its mode does not matter
    result = run("config", "show", env=clean_env(PRISMER_TOKEN=new_token("env")), timeout=15)
    assert result.code == 0, result.err
    # the same mode without a token in it is fine
    config_file(isolated_home, 'url = "http://127.0.0.1:1"\n', 0o644)
    result = run("config", "show", env=clean_env(), timeout=15)
    assert result.code == 0, result.err
    assert "http://127.0.0.1:1" in result.out


def test_sdk_file_only_warns(server: ServerProcess, isolated_home: Path) -> None:
    """A registered user needs no set-up: the SDK's 0644 file is used, with one warning."""
    token = new_token("sdk")
    path = sdk_file(isolated_home, token, server.url, 0o644)
    result = listen_once(server, token, *listen_args(), env=clean_env())
    assert_clean(result, token)
    assert_got_event(result)
    [warning] = result.err.strip().splitlines()
    assert "warning" in warning and f"chmod 600 {path}" in warning
    os.chmod(path, 0o600)
    result = listen_once(server, token, *listen_args(), env=clean_env())
    assert_got_event(result)
    assert result.err == ""


def test_broken_sdk_file_is_not_read_when_not_needed(isolated_home: Path) -> None:
    """The SDK's file is only read when nothing before it gave the setting."""
    write(isolated_home / ".prismer" / "config.toml", "this is [not toml", 0o644)
    env = clean_env(PRISMER_URL="http://127.0.0.1:1", PRISMER_TOKEN=new_token("env"))
    result = run("config", "show", env=env, timeout=15)
    assert result.code == 0, result.err
    result = run("config", "show", env=clean_env(), timeout=15)  # now it is needed
    assert result.code == 2
    assert "config.toml" in result.err and "Traceback" not in result.err


def test_token_file_dash_reads_stdin_for_listen(server: ServerProcess) -> None:
    """`--token-file -` reads the token from stdin for listen."""
    token = new_token("stdin")
    args = ["--url", server.url, *listen_args("--token-file", "-")]
    result = listen_once(server, token, *args, env=clean_env(), stdin=f"{token}\n".encode())
    assert_clean(result, token)
    assert_got_event(result)


@pytest.mark.parametrize(
    "args", [["send"], ["send", "c1"], ["send", "c1", "-"], ["mark-read"]], ids=" ".join
)
def test_token_file_dash_refused_when_stdin_is_the_input(
    server: ServerProcess, args: list[str]
) -> None:
    """`--token-file -` is a usage error where stdin holds the commands or the message."""
    token = new_token("stdin")
    connects = len([r for r in server.log() if r["kind"] == "ws_connect"])
    stdin = f"{token}\n" + '{"conversationId": "c1", "content": "x"}\n'
    result = run(*args, "--url", server.url, "--token-file", "-", env=clean_env(), input=stdin)
    assert result.code == 2, result.err
    assert "--token-file -" in result.err
    assert_clean(result, token)
    assert result.out == ""
    assert len([r for r in server.log() if r["kind"] == "ws_connect"]) == connects


def test_token_file_dash_with_the_message_as_argument(server: ServerProcess) -> None:
    """`send C TEXT --token-file -`: stdin is free, so it holds the token."""
    token = new_token("stdin")
    conv = "conv_" + uuid.uuid4().hex[:10]
    result = run(
        "send", conv, "hi", "--url", server.url, "--token-file", "-",
        env=clean_env(), input=f"{token}\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert_clean(result, token)
    [stored] = [
        r["frame"]
        for r in server.log()
        if r["kind"] == "ws_frame_in" and r.get("user") == user_id_for_token(token)
    ]
    assert stored["conversationId"] == conv


# ── --token on the command line ──────────────────────────────────────────


@pytest.mark.parametrize(
    ("args", "warnings"),
    [
        (["send", "{conv}", "hi", "--token", "{token}"], 1),
        (["--token", "{token}", "send", "{conv}", "hi"], 1),
        (["send", "{conv}", "hi", "--token", "{token}", "-q"], 0),
        (["-q", "--token", "{token}", "send", "{conv}", "hi"], 0),
        (["send", "{conv}", "hi", "--token", "{token}", "-v"], 1),
    ],
    ids=["after", "before", "quiet", "quiet-before", "verbose"],
)
def test_literal_token_warns_once(server: ServerProcess, args: list[str], warnings: int) -> None:
    """A token typed on the command line warns once on stderr; -q silences the warning."""
    token = new_token("literal")
    conv = "conv_" + uuid.uuid4().hex[:10]
    argv = [a.format(conv=conv, token=token) for a in args]
    result = run(*argv, "--url", server.url, env=clean_env(), timeout=15)
    assert result.code == 0, result.err
    assert_clean(result, token)
    assert result.err.count("visible to other users") == warnings, result.err
    sent = [
        r
        for r in server.log()
        if r["kind"] == "ws_frame_in" and r.get("user") == user_id_for_token(token)
    ]
    assert len(sent) == 1  # and the token was the one used


def test_token_from_environment_does_not_warn(server: ServerProcess) -> None:
    """PRISMER_TOKEN is the recommended way: no warning."""
    token = new_token("env")
    env = clean_env(PRISMER_TOKEN=token, PRISMER_URL=server.url)
    result = run("send", "conv_" + uuid.uuid4().hex[:10], "hi", env=env, timeout=15)
    assert result.code == 0, result.err
    assert result.err == ""


# ── config show ──────────────────────────────────────────────────────────


def show(result: Result) -> dict[str, tuple[str, str]]:
    """`config show` output as {setting: (value, source)}."""
    rows = {}
    for line in result.out.splitlines():
        name, _, rest = line.partition("  ")
        value, _, source = rest.strip().partition("    (")
        rows[name.strip()] = (value.strip(), source.rstrip(")"))
    return rows


def test_config_show_sources_and_masked_token(isolated_home: Path, tmp_path: Path) -> None:
    """`config show` names each setting's source and masks the token."""
    token = "abcd" + uuid.uuid4().hex + "wxyz"
    config_file(isolated_home, 'dialect = "server"\n')
    env = clean_env(PRISMER_TOKEN=token, PRISMER_TRANSPORT="sse")
    result = run("config", "show", "--url", "ws://example.test/ws", env=env, timeout=15)
    assert result.code == 0, result.err
    assert_clean(result, token)
    rows = show(result)
    config_path = str(isolated_home / ".config" / "prismer-rt" / "config.toml")
    assert rows["url"] == ("ws://example.test/ws", "--url")
    assert rows["token"] == (f"abcd…wxyz ({len(token)} chars)", "env PRISMER_TOKEN")
    assert rows["transport"] == ("sse", "env PRISMER_TRANSPORT")
    assert rows["dialect"] == ("server", config_path)
    assert rows["config file"][0] == config_path

    path = write(tmp_path / "token", token)
    result = run("config", "show", "--token-file", str(path), env=clean_env(), timeout=15)
    assert_clean(result, token)
    rows = show(result)
    assert rows["token"][1] == f"--token-file {path}"
    assert rows["url"] == (DEFAULT_URL, "default")
    assert rows["transport"] == ("auto", "default")

    sdk = sdk_file(isolated_home, token, "http://127.0.0.1:9")
    result = run("config", "show", env=clean_env(), timeout=15)
    assert_clean(result, token)
    rows = show(result)
    assert rows["token"][1] == f"{sdk} [auth] im_token"
    assert rows["url"] == ("http://127.0.0.1:9", f"{sdk} [default] base_url")


# ── bad settings ─────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["config", "show", "--profile", "nope"], {}, "no profile 'nope'"),
        (["listen", "--profile", "nope"], {}, "no profile 'nope'"),
        (["send", "c1", "hi"], {"PRISMER_PROFILE": "nope"}, "no profile 'nope'"),
        (["listen", "--transport", "pigeon"], {}, "transport must be one of"),
        (["--transport", "pigeon", "send", "c1", "hi"], {}, "transport must be one of"),
        (["listen"], {"PRISMER_TRANSPORT": "pigeon"}, "PRISMER_TRANSPORT"),
        (["send", "c1", "hi", "--dialect", "klingon"], {}, "dialect must be one of"),
        (["--dialect", "klingon", "mark-read", "c1"], {}, "dialect must be one of"),
        (["listen", "--url", "localhost:8765"], {}, "not a usable URL"),
        (["send", "c1", "hi", "--url", "ftp://example.test"], {}, "not a usable URL"),
        (["--url", "http://", "mark-read", "c1"], {}, "not a usable URL"),
        (["config", "show", "--url", "garbage"], {}, "not a usable URL"),
        (["listen"], {"PRISMER_URL": "example.test"}, "PRISMER_URL"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_settings_are_usage_errors(
    isolated_home: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    """Unknown profile, bad --transport/--dialect, bad URL: exit 2, one line, no traceback."""
    config_file(isolated_home, '[profiles.work]\nurl = "http://127.0.0.1:1"\n')
    token = new_token("bad")
    result = run(*args, env=clean_env(PRISMER_TOKEN=token, **env), timeout=15)
    assert result.code == 2, (result.out, result.err)
    assert_clean(result, token)
    assert result.out == ""
    [line] = result.err.strip().splitlines()
    assert line.startswith("prismer-rt: error:") and words in line, line


def test_no_token_anywhere(isolated_home: Path) -> None:
    """No token from any source: a usage error that says how to give one."""
    result = run("send", "c1", "hi", env=clean_env(PRISMER_URL="http://127.0.0.1:1"), timeout=15)
    assert result.code == 2
    assert "--token-file" in result.err and "PRISMER_TOKEN" in result.err
    assert "Traceback" not in result.err


# ── the precedence matrix, unit level ────────────────────────────────────

URL_SOURCES = [
    ("--url", "http://cli.test"),
    ("env PRISMER_URL", "http://env.test"),
    ("env PRISMER_BASE_URL", "http://base-url.test"),
    ("profile", "http://profile.test"),
    ("top-level", "http://top-level.test"),
    ("sdk", "http://sdk.test"),
]
TOKEN_SOURCES = [
    ("--token", "cli-token"),
    ("env PRISMER_TOKEN", "env-token"),
    ("env AGENT_TOKEN", "agent-token"),
    ("profile", "profile-token"),
    ("top-level", "top-level-token"),
    ("sdk", "sdk-token"),
]


def _setup(home: Path, present: set[str]) -> tuple[CommandLine, dict[str, str]]:
    """Every source in `present` set, URL and token alike; returns (command line, environment)."""
    urls, tokens = dict(URL_SOURCES), dict(TOKEN_SOURCES)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    cli = CommandLine(
        url=urls["--url"] if "cli" in present else None,
        token=tokens["--token"] if "cli" in present else None,
    )
    if "env" in present:
        env.update(PRISMER_URL=urls["env PRISMER_URL"], PRISMER_TOKEN=tokens["env PRISMER_TOKEN"])
    if "env2" in present:
        env.update(
            PRISMER_BASE_URL=urls["env PRISMER_BASE_URL"], AGENT_TOKEN=tokens["env AGENT_TOKEN"]
        )
    text = ""
    if "top-level" in present:
        text += f'url = "{urls["top-level"]}"\ntoken = "{tokens["top-level"]}"\n'
    if "profile" in present:
        text += f'[profiles.p]\nurl = "{urls["profile"]}"\ntoken = "{tokens["profile"]}"\n'
        env["PRISMER_PROFILE"] = "p"
    if text:
        config_file(home, text)
    if "sdk" in present:
        sdk_file(home, tokens["sdk"], urls["sdk"])
    return cli, env


MATRIX = ["cli", "env", "env2", "profile", "top-level", "sdk"]


@pytest.mark.parametrize("highest", range(len(MATRIX)), ids=lambda i: MATRIX[i])
def test_precedence_matrix(tmp_path: Path, highest: int) -> None:
    """config.resolve: the highest source present wins, for the URL and the token alike."""
    cli, env = _setup(tmp_path, set(MATRIX[highest:]))
    settings = resolve(cli, env)
    assert settings.url.value == URL_SOURCES[highest][1]
    assert settings.token.value == TOKEN_SOURCES[highest][1]
    if MATRIX[highest].startswith("env"):
        assert settings.url.source == URL_SOURCES[highest][0]
        assert settings.token.source == TOKEN_SOURCES[highest][0]


def test_defaults(tmp_path: Path) -> None:
    """Nothing set: the page's URL, no token, auto transport and dialect."""
    settings = resolve(CommandLine(), {"HOME": str(tmp_path)})
    assert (settings.url.value, settings.url.source) == (DEFAULT_URL, "default")
    assert settings.token.value is None
    assert (settings.transport.value, settings.dialect.value) == ("auto", "auto")


def test_profile_from_command_line_beats_environment(tmp_path: Path) -> None:
    """--profile wins over PRISMER_PROFILE."""
    config_file(
        tmp_path, '[profiles.a]\nurl = "http://a.test"\n[profiles.b]\nurl = "http://b.test"\n'
    )
    env: dict[str, Any] = {"HOME": str(tmp_path), "PRISMER_PROFILE": "a"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".config")
    assert resolve(CommandLine(), env).url.value == "http://a.test"
    assert resolve(CommandLine(profile="b"), env).url.value == "http://b.test"
    with pytest.raises(UsageError, match="known: a, b"):
        resolve(CommandLine(profile="c"), env)


def test_config_show_warns_and_names_the_profile_source(isolated_home: Path) -> None:
    """`config show` repeats the warnings a command would give, and where the profile came from."""
    path = sdk_file(isolated_home, "sdk-token-for-show", None, 0o644)
    config_file(isolated_home, '[profiles.work]\nurl = "http://127.0.0.1:1"\n')
    result = run("config", "show", env=clean_env(PRISMER_PROFILE="work"), timeout=15)
    assert result.code == 0, result.err
    assert f"chmod 600 {path}" in result.err
    assert show(result)["profile"] == ("work", "env PRISMER_PROFILE")
    result = run("config", "show", "--profile", "work", "-q", env=clean_env(), timeout=15)
    assert result.err == ""
    assert show(result)["profile"] == ("work", "--profile")
