"""Honest failures for scripts (issue 11), through the real command: deadlines that hold
against a server that accepts TCP and never answers, and a connection that never came is a
failure, said on stderr without -v."""

from __future__ import annotations

import select
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Background, env_for, run, user_id
from tests.support.serverfixture import BlackHole, ServerFactory

TOKEN = "failures-token"


def timed(*args: str, env: dict[str, str], input: str | None = None) -> tuple[float, object]:
    """The run and its wall time. The bounds asserted on it leave 2 s past the deadline under
    test for the process' own start and exit (a loaded machine, coverage, parallel tests), far
    below the 10 s connect timeout, or the minutes of retrying, that each deadline cuts short."""
    start = time.monotonic()
    result = run(*args, env=env, input=input, timeout=60)
    return time.monotonic() - start, result


@pytest.mark.parametrize("transport", ["auto", "ws", "sse"])
def test_listen_timeout_is_a_hard_deadline_and_never_connected_is_exit_4(
    black_hole: BlackHole, transport: str
) -> None:
    """--timeout 2 against a black hole: exit 4 well before the 10 s connect timeout, whichever
    transport (the SSE fallback gets no time of its own), and the failure is on stderr without
    -v."""
    env = env_for(black_hole.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="10")
    elapsed, result = timed("listen", "--timeout", "2", "--transport", transport, env=env)
    assert result.code == 4, result.err  # type: ignore[attr-defined]
    assert elapsed < 4.0
    err = result.err  # type: ignore[attr-defined]
    assert f"cannot connect to {black_hole.url}" in err
    assert f"no connection to {black_hole.url} within --timeout 2 s" in err
    assert "Traceback" not in err and result.out == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize("durable", [("--since", "all", "--no-follow"), ("--since", "all")])
def test_the_catch_up_is_bounded_by_timeout_too(
    black_hole: BlackHole, durable: tuple[str, ...]
) -> None:
    """--since/--no-follow against a black hole: the event log's requests end by --timeout
    (not after the 10 s connect timeout), exit 4, said in plain words."""
    env = env_for(black_hole.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="10")
    elapsed, result = timed("listen", *durable, "--timeout", "2", env=env)
    assert result.code == 4, result.err  # type: ignore[attr-defined]
    assert elapsed < 4.0
    err = result.err  # type: ignore[attr-defined]
    assert "cannot read the event log: timed out" in err
    assert "HTTPConnectionPool" not in err and "Traceback" not in err


def test_listen_timeout_with_count_never_connected_is_exit_4_not_124(
    black_hole: BlackHole,
) -> None:
    elapsed, result = timed("listen", "--count", "1", "--timeout", "1", env=env_for(black_hole.url))
    assert result.code == 4  # type: ignore[attr-defined]
    assert elapsed < 3.0


def test_max_retries_bounds_attempts_and_each_attempt_by_the_connect_timeout(
    black_hole: BlackHole,
) -> None:
    """--max-retries 1: two attempts, each (WebSocket and its SSE fallback together) within
    the 1 s connect timeout: a few seconds, not the 161 s of issue 11."""
    env = env_for(black_hole.url, TOKEN, PRISMER_RT_CONNECT_TIMEOUT="1")
    elapsed, result = timed("listen", "--max-retries", "1", env=env)
    assert result.code == 4  # type: ignore[attr-defined]
    assert "giving up after 1 retries" in result.err  # type: ignore[attr-defined]
    assert elapsed < 4.5
    assert black_hole.accepted == 2  # one connection per attempt: no SSE on top


def test_send_has_an_overall_bound(black_hole: BlackHole) -> None:
    """send against a black hole gives up after PRISMER_RT_SEND_TIMEOUT, with a result line."""
    env = env_for(black_hole.url, TOKEN, PRISMER_RT_SEND_TIMEOUT="2")
    elapsed, result = timed("send", "c1", "hi", env=env)
    assert result.code == 4  # type: ignore[attr-defined]
    assert elapsed < 4.0
    (line,) = result.lines  # type: ignore[attr-defined]
    assert line["ok"] is False and line["conversationId"] == "c1"


def test_send_help_documents_the_bound() -> None:
    result = run("send", "--help")
    assert "30 s" in result.out and "PRISMER_RT_SEND_TIMEOUT" in result.out


def test_refused_connection_is_reported_at_once_without_verbose(
    server_factory: ServerFactory,
) -> None:
    """A down server: the first failure is on stderr at once, then nothing more for 5 s
    (the attempts go on every ~0.4 s), then exit 4 at the deadline."""
    server = server_factory()
    url = server.url
    server.stop()
    start = time.monotonic()
    proc = Background("listen", "--timeout", "3", env=env_for(url, TOKEN))
    assert proc.proc.stderr is not None
    ready, _, _ = select.select([proc.proc.stderr], [], [], 2.0)
    assert ready, "nothing on stderr within 2 s"
    first = proc.proc.stderr.readline().decode()
    assert time.monotonic() - start < 2.0
    assert first.startswith(f"prismer-rt: warning: cannot connect to {url}: ")
    assert "refused" in first
    result = proc.wait()
    assert result.code == 4
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("prismer-rt: error: no connection to")


def test_failure_reports_come_at_growing_intervals() -> None:
    """FailureReport: the first at once, then one per interval, the interval doubling."""
    import io

    from prismer_cli.listen.failures import FailureReport
    from prismer_cli.log import Log

    now = [0.0]
    stream = io.StringIO()
    report = FailureReport(Log(stream=stream), "http://h", clock=lambda: now[0])
    for tick in range(0, 400):  # an attempt every 0.5 s for 200 s
        now[0] = tick * 0.5
        report.failed("refused")
    times = [0.0, 5.0, 15.0, 35.0, 75.0, 155.0]
    assert len(stream.getvalue().splitlines()) == len(times)
    assert "still no connection to http://h after 11 attempts in 5 s" in stream.getvalue()
    report.succeeded()
    now[0] = 1000.0
    report.failed("refused")
    assert (
        stream.getvalue().splitlines()[-1].endswith("cannot connect to http://h: refused; retrying")
    )


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_listen_notices_at_once_that_stdout_reader_went_away(
    server_factory: ServerFactory, transport: str
) -> None:
    """`listen --timeout 30 | (read nothing; exit)`: listen ends quietly within a second or
    two of the reader going away, not at its next write or at --timeout."""
    from tests.support.cli import wait_for_connections

    server = server_factory()
    proc = Background(
        "listen", "--timeout", "30", "--transport", transport, env=env_for(server.url, TOKEN)
    )
    wait_for_connections(server, 1)
    assert proc.proc.stdout is not None
    proc.proc.stdout.close()
    start = time.monotonic()
    code = proc.proc.wait(timeout=10)
    assert time.monotonic() - start < 2.0
    assert code == 0
    assert proc.proc.stderr is not None and proc.proc.stderr.read() == b""


def test_a_reader_that_goes_away_during_a_durable_catch_up_leaves_no_traceback(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """`listen --cursor-file F | head -1` over the docs dialect's resumed SSE stream: the write
    that fails and the hang-up watcher both say stdout closed; only one may end the program,
    or the second interrupts the stream's clean-up ("Exception ignored ... OutputClosed")."""
    import subprocess

    from tests.support.cli import command

    server = server_factory(dialect="docs")
    me = user_id(TOKEN)
    for i in range(300):
        server.emit(
            "message.edited", {"id": f"m{i}", "conversationId": "c1", "pad": "x" * 500}, to=me
        )
    for run_number in range(6):
        cursor = tmp_path / f"run{run_number}.cursor"
        listen = " ".join(command("listen", "--cursor-file", str(cursor), "--since", "1"))
        shell = subprocess.run(
            ["bash", "-c", f"{listen} --timeout 4 | head -1"],
            env=env_for(server.url, TOKEN),
            capture_output=True,
            timeout=20,
        )
        assert len(shell.stdout.splitlines()) == 1
        assert shell.stderr.decode() == ""


def test_match_compares_as_json_else_as_string_and_all_must_hold(
    server_factory: ServerFactory,
) -> None:
    """--match payload.n=1 is the number 1 (not "1", not true); payload.s=x is the string x;
    an absent field never matches; both must hold."""
    from tests.support.cli import user_id, wait_for_connections

    server = server_factory()
    proc = Background(
        "listen",
        "--match",
        "payload.n=1",
        "-m",
        "payload.s=x",
        "--count",
        "2",
        "--timeout",
        "10",
        env=env_for(server.url, TOKEN),
    )
    wait_for_connections(server, 1)
    payloads: list[dict[str, object]] = [
        {"n": "1", "s": "x"},
        {"n": True, "s": "x"},
        {"n": 1, "s": "y"},
        {"s": "x"},
        {"n": 1, "s": "x", "k": "first"},
        {"n": 1.0, "s": "x", "k": "second"},
    ]
    for payload in payloads:
        server.emit("task.updated", payload, to=user_id(TOKEN))
    result = proc.wait()
    assert result.code == 0, result.err
    assert [e["payload"]["k"] for e in result.lines] == ["first", "second"]


@pytest.mark.parametrize("spec", ["payload.taskId", "=1", "payload..x=1", ".x=1"])
def test_match_without_a_path_or_value_is_a_usage_error(spec: str) -> None:
    result = run("listen", "--match", spec, env=env_for("http://127.0.0.1:9", TOKEN))
    assert result.code == 2
    assert "expected PATH=VALUE" in result.err and "Traceback" not in result.err


def _config(home: Path, text: str | bytes) -> Path:
    path = home / ".config" / "prismer-rt" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[profiles.dev]\nurl = 18765\n", "[profiles.dev] url must be a string, not an integer"),
        ("token = 12345\n", "token must be a string, not an integer"),
        ('transprot = "ws"\n', "unknown key 'transprot' (did you mean 'transport'?)"),
        ('[profiles.dev]\ndialct = "docs"\n', "[profiles.dev] unknown key 'dialct'"),
        ('url = "localhost:8765"\n', "url: not a usable URL: 'localhost:8765'"),
        ('[profiles.x]\ntransport = "carrier-pigeon"\n', "transport must be one of auto, ws, sse"),
        ("profiles = 3\n", "profiles must be tables"),
        (b'url = "\xff"\n', "it is not UTF-8 text"),
    ],
)
@pytest.mark.parametrize("command", [("config", "show"), ("listen", "--timeout", "1")])
def test_config_is_validated_whole_before_anything_connects(
    isolated_home: Path, text: str | bytes, expected: str, command: tuple[str, ...]
) -> None:
    """Every mistake in config.toml, in any profile (selected or not): exit 2 naming the file,
    the key and what was expected; no connection is attempted (the token would otherwise go
    to the default production URL)."""
    path = _config(isolated_home, text)
    env = env_for(None, TOKEN)  # no profile selected: [profiles.*] are checked all the same
    result = run(*command, env=env)
    assert result.code == 2, result.err
    assert str(path) in result.err and expected in result.err, result.err
    assert result.out == "" and "Traceback" not in result.err


def test_missing_profile_is_exit_2(isolated_home: Path) -> None:
    _config(isolated_home, '[profiles.work]\nurl = "http://127.0.0.1:1"\n')
    result = run("config", "show", "--profile", "wrok", env=env_for(None, TOKEN))
    assert result.code == 2 and "no profile 'wrok'" in result.err and "work" in result.err


def test_sdk_login_of_the_wrong_type_is_not_skipped(isolated_home: Path) -> None:
    sdk = isolated_home / ".prismer" / "config.toml"
    sdk.parent.mkdir()
    sdk.write_text("[auth]\nim_token = 12345\n")
    result = run("config", "show", env=env_for(None, None))
    assert result.code == 2 and "[auth] im_token must be a string" in result.err


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("directory", "is a directory, not a file"),
        ("device", "is not a regular file"),
        ("empty", "is empty"),
        ("blank", "is empty"),
        ("binary", "is not UTF-8 text"),
        ("two-lines", "holds 2 lines; it must hold the token alone on one line"),
    ],
)
def test_token_file_that_is_not_a_token_file_says_exactly_why(
    tmp_path: Path, kind: str, expected: str
) -> None:
    """A token file that cannot hold a token: exit 2 saying what is wrong with it, never
    "chmod 600" (the mode is not the problem) nor "list index out of range"; nothing connects."""
    path = tmp_path / "token"
    if kind == "directory":
        path.mkdir()
    elif kind == "device":
        path = Path("/dev/null")
    else:
        contents = {"empty": b"", "blank": b"\n \n", "binary": b"\xff\xfe\x00tok\n"}
        path.write_bytes(contents.get(kind, b"token-one\ntoken-two\n"))
        path.chmod(0o600)
    for command in (("config", "show"), ("listen", "--timeout", "1")):
        result = run(*command, "--token-file", str(path), env=env_for("http://127.0.0.1:9", None))
        assert result.code == 2, result.err
        assert f"the token file {path} {expected}" in result.err, result.err
        assert "chmod" not in result.err and "Traceback" not in result.err
        assert "cannot connect" not in result.err and result.out == ""


def test_token_file_with_blank_lines_around_the_token_and_from_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\n  the-token-value \n\n")
    path.chmod(0o600)
    result = run("config", "show", "--token-file", str(path), env=env_for(None, None))
    assert result.code == 0 and "the-…alue (15 chars)" in result.out, result.err
    result = run("config", "show", "--token-file", "-", env=env_for(None, None), input=b"\xff\n")
    assert result.code == 2 and "the token on stdin (--token-file -) is not UTF-8" in result.err


def test_token_file_mode_is_the_only_case_for_chmod(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok\n")
    path.chmod(0o644)
    result = run("config", "show", "--token-file", str(path), env=env_for(None, None))
    assert result.code == 2 and f"run: chmod 600 {path}" in result.err


def _usage_error(result: object) -> str:
    err: str = result.err  # type: ignore[attr-defined]
    assert result.code == 2, err  # type: ignore[attr-defined]
    assert result.out == "" and "Traceback" not in err  # type: ignore[attr-defined]
    return err


def test_non_utf8_on_the_command_line_is_refused_with_exit_2(
    server_factory: ServerFactory,
) -> None:
    """`send c1 $'\\xff'`: exit 2 naming the argument, nothing sent (not exit 1 with
    "str is not valid UTF-8"); a token that is not UTF-8 is not shown."""
    import os
    import subprocess

    from tests.support.cli import Result, command

    server = server_factory(dialect="server")
    env = env_for(server.url, TOKEN)
    for args, shown in (
        ([b"send", b"c1", b"a\xffb"], "argument 3 of the command line is not UTF-8 text: a\\xffb"),
        ([b"mark-read", b"c\xfe"], "argument 2 of the command line is not UTF-8 text: c\\xfe"),
        ([b"--token", b"SECRET\xff", b"send", b"c1", b"x"], "argument 2 of the command line"),
    ):
        argv = [os.fsencode(a) for a in command()] + args
        proc = subprocess.run(
            argv, env=env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
        result = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        err = _usage_error(result)
        assert shown in err and "SECRET" not in err
    assert [r for r in server.log() if r["kind"] == "rest" or r["kind"].startswith("ws_")] == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize(
    "args",
    [
        ("listen", "--timeout"),
        ("subscribe", "c1", "--timeout"),
        ("send", "c1", "x", "--wait"),
        ("serve", "--port", "0", "--heartbeat"),
        ("serve", "--port", "0", "--ack-timeout"),
        ("serve", "--port", "0", "--auth-timeout"),
        ("serve", "--port", "0", "--token-ttl"),
    ],
)
def test_nan_and_inf_are_refused_for_every_float_option(value: str, args: tuple[str, ...]) -> None:
    result = run(*args, value, env=env_for("http://127.0.0.1:9", TOKEN), timeout=10)
    err = _usage_error(result)
    assert f"Invalid value for '{args[-1]}'" in err


def test_nan_in_a_timer_variable_is_refused() -> None:
    result = run(
        "listen", env=env_for("http://127.0.0.1:9", TOKEN, PRISMER_RT_CONNECT_TIMEOUT="nan")
    )
    assert "PRISMER_RT_CONNECT_TIMEOUT must be a positive finite number" in _usage_error(result)


@pytest.mark.parametrize(
    "args",
    [
        ("mark-read", ".."),
        ("mark-read", "."),
        ("mark-read", ""),
        ("mark-read", "a/b"),
        ("mark-read", "c1", ".."),
        ("mark-read", "c1", "m/1"),
        ("send", "..", "hi"),
        ("send", ".", "hi"),
        ("send", "", "hi"),
        ("send", "../read", "hi"),
    ],
)
def test_ids_that_would_escape_the_rest_path_are_refused_before_any_request(
    server_factory: ServerFactory, args: tuple[str, ...]
) -> None:
    """`mark-read ..` would POST to /api/im/read: exit 2 and no request at all, whichever
    transport (REST is what the server dialect uses for mark-read, and sse for send)."""
    server = server_factory(dialect="server")
    for transport in ("auto", "sse"):
        result = run(*args, "--transport", transport, env=env_for(server.url, TOKEN))
        assert "is not an id" in _usage_error(result)
    assert [r for r in server.log() if r["kind"] == "rest" or r["kind"].startswith("ws_")] == []


def test_ids_in_stdin_lines_are_checked_too(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server")
    lines = (
        '{"conversationId": "..", "content": "a"}\n'
        '{"conversationId": "x/y", "content": "b"}\n'
        '{"conversationId": "c1", "content": "c", "parentId": "."}\n'
    )
    result = run("send", "--transport", "sse", env=env_for(server.url, TOKEN), input=lines)
    assert result.code == 6, result.err
    assert "line 1" in result.err and "'..' is not an id" in result.err
    assert "contains '/'" in result.err and '"parentId"' in result.err
    assert [r for r in server.log() if r["kind"] == "rest" and "messages" in r["path"]] == []
    result = run(
        "mark-read",
        "--transport",
        "sse",
        env=env_for(server.url, TOKEN),
        input='{"conversationId": "."}\n{"conversationId": "c1", "upToMessageId": ".."}\n',
    )
    assert result.code == 6 and "'.' is not an id" in result.err and '"upToMessageId"' in result.err
    assert [r for r in server.log() if r["kind"] == "rest" and "read" in r["path"]] == []


def _run_with(
    args: tuple[str, ...], stdout: str, stderr: str, env: dict[str, str], input: bytes = b""
) -> tuple[int, str]:
    """Run with stdout and stderr each "pipe", "full" (/dev/full) or "closed" (`>&-`); the
    status and what reached stderr (when it is a pipe)."""
    import os
    import subprocess

    from tests.support.cli import command

    closing = [fd for fd, how in ((1, stdout), (2, stderr)) if how == "closed"]

    def close_them() -> None:
        for fd in closing:
            os.close(fd)

    with open("/dev/full", "wb") as full:
        streams: dict[str, Any] = {
            "pipe": subprocess.PIPE,
            "full": full,
            "closed": subprocess.DEVNULL,
        }
        proc = subprocess.run(
            command(*args),
            input=input,
            stdout=streams[stdout],
            stderr=streams[stderr],
            env=env,
            timeout=20,
            preexec_fn=close_them,
        )
    return proc.returncode, (proc.stderr or b"").decode()


COMMANDS = [
    ("--help",),
    ("--version",),
    ("send", "--help"),
    ("listen", "-h"),
    ("config", "show"),
    ("whoami",),
    ("send", "c1", "hi"),
    ("mark-read", "c1"),
    ("listen", "--count", "1", "--since", "all", "--timeout", "5"),
]


@pytest.mark.parametrize("stdout", ["full", "closed"])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_stdout_that_cannot_be_written_is_exit_2_with_write_error_never_a_traceback(
    server_factory: ServerFactory, args: tuple[str, ...], stdout: str
) -> None:
    """`> /dev/full` and `>&-` for every command, --help and --version included: "write error
    on stdout" on stderr and exit 2, as `ls > /dev/full` does; no traceback."""
    server = server_factory()
    server.emit("task.updated", {"n": 1}, to=user_id(TOKEN))  # for listen --since all
    code, err = _run_with(args, stdout, "pipe", env_for(server.url, TOKEN))
    reason = "No space left on device" if stdout == "full" else "Bad file descriptor"
    assert err == f"prismer-rt: error: write error on stdout: {reason}\n"
    assert code == 2


@pytest.mark.parametrize("stderr", ["full", "closed"])
@pytest.mark.parametrize("args", [*COMMANDS, ("--bogus",), ("listen", "--timeout", "nan")])
def test_a_stderr_that_cannot_be_written_changes_no_status(
    server_factory: ServerFactory, args: tuple[str, ...], stderr: str
) -> None:
    server = server_factory()
    server.emit("task.updated", {"n": 1}, to=user_id(TOKEN))
    code, _ = _run_with(args, "pipe", stderr, env_for(server.url, TOKEN))
    assert code == (2 if args[-1] in ("--bogus", "nan") else 0)


@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_send_still_sends_when_its_report_cannot_be_written(
    server_factory: ServerFactory, stdout: str
) -> None:
    """The messages are the job, the result lines the report: every message is stored, then
    exit 2 for the lost report (both transports)."""
    server = server_factory()
    env = env_for(server.url, TOKEN)
    code, err = _run_with(("send", "c1", "one"), stdout, "pipe", env)
    assert code == 2 and "write error on stdout" in err
    lines = b"".join(b'{"conversationId": "c1", "content": "%d"}\n' % n for n in range(2, 5))
    for transport in ("ws", "sse"):
        code, err = _run_with(("send", "--transport", transport), stdout, "pipe", env, lines)
        assert code == 2 and err.count("write error on stdout") == 1, err
    contents = [m["content"] for m in server.messages("c1")]
    assert contents == ["one", "2", "3", "4", "2", "3", "4"]


MIXED = (
    b'{"conversationId": "c1", "content": "a"}\n'
    b"not json\n"
    b"\n"
    b'{"conversationId": "..", "content": "x"}\n'
    b'{"conversationId": "c1", "content": "b"}\n'
    b"[1]\n"
    b"\xff\xfe\n"
    b'{"conversationId": "c1", "content": "c"}'
)


@pytest.mark.parametrize("dialect", ["docs", "server"])
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_every_non_blank_stdin_line_gets_one_result_line_in_input_order(
    server_factory: ServerFactory, dialect: str, transport: str
) -> None:
    """Invalid lines too ({"ok": false, "line": N, "error": ...}), between their neighbours'
    results, so a script can pair results with input lines; exit 6."""
    import requests

    server = server_factory(dialect=dialect)
    env = env_for(server.url, TOKEN)
    for token in ("peer-token", TOKEN):  # both users known to the server
        run("whoami", env=env_for(server.url, token))
    seed = requests.post(  # a conversation, which the server dialect wants to exist
        server.url + f"/api/im/direct/{user_id('peer-token')}/messages",
        json={"content": "seed"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert seed.status_code == 201, seed.text
    conv = seed.json()["data"]["message"]["conversationId"]
    result = run(
        "send", "--transport", transport, env=env, input=MIXED.replace(b"c1", conv.encode())
    )
    assert result.code == 6, result.err
    lines = result.lines
    assert [r["line"] for r in lines] == [1, 2, 4, 5, 6, 7, 8]
    assert [r["ok"] for r in lines] == [True, False, False, True, False, False, True]
    assert lines[1] == {"ok": False, "line": 2, "error": "not valid JSON"}
    assert "is not an id" in lines[2]["error"] and lines[4]["error"] == "not a JSON object"
    assert [m["content"] for m in server.messages(conv)] == ["seed", "a", "b", "c"]


def test_invalid_lines_get_their_result_when_nothing_can_be_sent() -> None:
    """Server down: every valid line fails (exit 4), every invalid line still has its line."""
    result = run(
        "send", env=env_for("http://127.0.0.1:9", TOKEN, PRISMER_RT_SEND_TIMEOUT="1"), input=MIXED
    )
    assert result.code == 4, result.err
    assert [r["line"] for r in result.lines] == [1, 2, 4, 5, 6, 7, 8]
    assert not any(r["ok"] for r in result.lines)


def test_mark_read_invalid_lines_get_a_result_line(server_factory: ServerFactory) -> None:
    server = server_factory()
    result = run(
        "mark-read",
        env=env_for(server.url, TOKEN),
        input=b'x\n{"conversationId": "c1", "upToMessageId": "m/1"}\n{"conversationId": "c1"}\n',
    )
    assert result.code == 6, result.err
    assert [(r["line"], r["ok"]) for r in result.lines] == [(1, False), (2, False), (3, True)]


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (("listen", "--bogus"), None),
        (("--bogus",), None),
        (("listen", "--timout", "3"), "--timeout"),
        (("send", "--wiat", "3", "c1", "x"), "--wait"),
        (("config", "show", "--tokn", "x"), "--token"),
        (("--verbos", "listen"), "--verbose"),
    ],
)
def test_unknown_options_suggest_the_nearest_real_option_or_none(
    args: tuple[str, ...], suggestion: str | None
) -> None:
    result = run(*args, env=env_for("http://127.0.0.1:9", TOKEN))
    err = _usage_error(result)
    assert "No such option: " in err
    if suggestion is None:
        assert "--verbose" not in err and "Possible" not in err and "Did you mean" not in err
    else:
        last = err.strip().splitlines()[-1]
        assert suggestion in last and last.count("--") == 2, last


def test_connection_failures_are_said_in_plain_words_once(server_factory: ServerFactory) -> None:
    """No doubled prefix, no library text (HTTPConnectionPool, tuples, [Errno]), the host named
    when it cannot be resolved; for listen and send, over each transport."""
    server = server_factory()
    down = server.url
    server.stop()
    env = env_for(None, TOKEN, PRISMER_RT_SEND_TIMEOUT="1", PRISMER_RT_CONNECT_TIMEOUT="1")
    for url, words in (
        (down, "connection refused"),
        ("http://no-such-host.invalid", "cannot resolve no-such-host.invalid"),
    ):
        for transport in ("ws", "sse"):
            for args in (("listen", "--timeout", "1"), ("send", "c1", "x")):
                result = run(*args, "--url", url, "--transport", transport, env=env)
                text = result.err + result.out
                assert result.code == 4, text
                assert words in text, text
                for bad in (
                    "Pool(",
                    "[Errno",
                    "('",
                    "cannot connect: ",
                    "connection lost: connection lost",
                    "cannot connect to http://no-such-host.invalid: cannot connect",
                ):
                    assert bad not in text, text


def test_verbose_shows_the_url_with_the_token_masked_and_the_transport(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    for transport, expected in (
        ("ws", f"connecting to {server.ws_url}/ws?token=*** (WebSocket)"),
        ("sse", f"connecting to {server.url} (Server-Sent Events, token=***)"),
    ):
        result = run(
            "-v",
            "listen",
            "--timeout",
            "1",
            "--transport",
            transport,
            env=env_for(server.url, TOKEN),
        )
        assert (
            expected in result.err and f"connected over {transport} to {server.url}" in result.err
        )
        assert TOKEN not in result.err


def test_send_verbose_says_how_it_sends(server_factory: ServerFactory) -> None:
    """`send -v` logs its connection too: over a WebSocket, or over REST."""
    server = server_factory()
    env = env_for(server.url, TOKEN)
    over_ws = run("-v", "send", "c1", "hi", env=env)
    assert f"connected over ws to {server.url}, docs dialect" in over_ws.err
    over_rest = run("-v", "--transport", "sse", "send", "c1", "hi", env=env)
    assert f"sending over REST to {server.url}" in over_rest.err
    assert TOKEN not in over_ws.err + over_rest.err


def _at_a_terminal(args: tuple[str, ...], env: dict[str, str], typed: bytes = b"") -> str:
    """Run with stdin, stdout and stderr on a pseudo-terminal; what the terminal showed."""
    import os
    import pty

    from tests.support.cli import command

    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, never back into pytest
        try:
            argv = command(*args)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    shown = b""
    deadline = time.monotonic() + 15
    typed_yet = not typed
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            if not typed_yet and b"Ctrl-D" in shown:
                os.write(fd, typed)
                typed_yet = True
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    return shown.decode(errors="replace")


def test_listen_says_where_and_as_whom_at_a_terminal_only(server_factory: ServerFactory) -> None:
    server = server_factory()
    env = env_for(server.url, TOKEN)
    shown = _at_a_terminal(("listen", "--timeout", "1"), env)
    assert f"prismer-rt: listening on {server.url} as " in shown and "(Ctrl-C to stop)" in shown
    result = run("listen", "--timeout", "1", env=env)  # stderr a pipe: nothing
    assert result.err == "" and result.code == 0


@pytest.mark.parametrize("args", [("send", "c1"), ("send",)])
def test_send_at_a_terminal_says_it_reads_stdin_until_ctrl_d(
    server_factory: ServerFactory, args: tuple[str, ...]
) -> None:
    server = server_factory()
    typed = (
        b"hello\n\x04"
        if args == ("send", "c1")
        else b'{"conversationId": "c1", "content": "hello"}\n\x04'
    )
    shown = _at_a_terminal(args, env_for(server.url, TOKEN), typed)
    assert "from stdin until Ctrl-D" in shown, shown
    assert '"ok":true' in shown
    assert [m["content"] for m in server.messages("c1")] == ["hello"]
    result = run(*args, env=env_for(server.url, TOKEN), input=typed[:-1])
    assert "Ctrl-D" not in result.err and result.code == 0
