"""The small ones of issue 17 (item 11), through the real command: each odd input gets a clear
message and the right status, never exit 1, a secret on screen, or unbounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support.cli import command, env_for, run
from tests.support.serverfixture import ServerFactory

TOKEN = "edges-token"


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("\ufeffabc", "a byte-order mark (U+FEFF"),
        ("ab\u20acc", "'€' (U+20AC) at character 3"),
        ("ab\u00e9c", "'é' (U+00E9) at character 3"),
    ],
    ids=["bom", "not-latin-1", "latin-1"],
)
@pytest.mark.parametrize("args", [("whoami",), ("listen", "--since", "all", "--no-follow")])
def test_a_token_that_is_not_ascii_is_a_usage_error(
    token: str, shown: str, args: tuple[str, ...]
) -> None:
    """Not exit 1 with "unexpected UnicodeEncodeError" from an HTTP header: exit 2, saying
    which character, where, and where the token came from; nothing is sent."""
    result = run(*args, env=env_for("http://127.0.0.1:9", token))
    assert result.code == 2, result.err
    assert f"the token (env PRISMER_TOKEN) holds {shown}" in result.err
    assert "Unicode" not in result.err and "unexpected" not in result.err


def test_a_token_file_with_a_bom_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xef\xbb\xbfabc\n")
    path.chmod(0o600)
    result = run("--token-file", str(path), "whoami", env=env_for("http://127.0.0.1:9", None))
    assert result.code == 2, result.err
    assert f"the token (--token-file {path}) holds a byte-order mark" in result.err


@pytest.mark.parametrize(
    "args",
    [
        ("listen", "--timeout", "1"),
        ("listen", "--since", "all", "--no-follow", "--timeout", "1"),
        ("send", "c1", "x"),
        ("whoami",),
        ("register", "some-agent"),
        ("config", "show"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_credentials_in_the_url_are_never_shown(args: tuple[str, ...]) -> None:
    """http://user:password@host: stderr (with -v), result lines and config show mask them as
    they mask the token."""
    url = "http://someone:hunter2@127.0.0.1:9"
    env = env_for(url, TOKEN, PRISMER_RT_SEND_TIMEOUT="1", PRISMER_RT_CONNECT_TIMEOUT="1")
    result = run("-v", *args, env=env)
    assert "hunter2" not in result.out + result.err
    assert "someone" not in result.out + result.err
    if args[:2] in (("listen", "--timeout"), ("send", "c1"), ("config", "show")):
        assert "http://***@127.0.0.1:9" in result.out + result.err


def _peak_rss_kib(args: list[str], stdin: Path, env: dict[str, str]) -> tuple[int, bytes]:
    """Run the command with stdin from a file; its peak resident memory (KiB) and stdout,
    measured by a parent of its own, so that no other child counts."""
    probe = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[1], 'rb') as stdin:\n"
        "    done = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.PIPE)\n"
        "sys.stdout.buffer.write(done.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(stdin), *args],
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    )
    out, _, last = done.stdout.rstrip(b"\n").rpartition(b"\n")
    rss, code = last.split()
    assert int(code) == 5, done.stderr.decode()
    return int(rss), out


def test_a_stdin_line_without_end_is_refused_not_kept(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A 60 MB line (no newline in it) with a 1 MiB message limit: it is not kept in memory,
    its result says it is too big (exit 5, as any message over the limit), and the lines after
    it are still read and sent."""
    server = server_factory()
    env = env_for(server.url, TOKEN, PRISMER_RT_MAX_MESSAGE_BYTES=str(1 << 20))
    first = b'{"conversationId":"c1","content":"before"}\n'
    last = b'{"conversationId":"c1","content":"after"}\n'
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * (3 << 20) + b"\n" + last.replace(b"c1", b"c0") * 2)
    with big.open("wb") as handle:
        handle.write(first)
        for _ in range(60):
            handle.write(b"x" * (1 << 20))
        handle.write(b"\n" + last)
    base, _ = _peak_rss_kib(command("send"), small, env)  # the same, with a short line
    peak, out = _peak_rss_kib(command("send"), big, env)
    assert peak - base < 20 * 1024, (base, peak)  # kept whole, the line alone is 60 MB
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["ok"] for line in lines] == [True, False, True]
    assert lines[1]["line"] == 2
    assert "more than the 1048576 bytes the server accepts" in lines[1]["error"]
    assert "not even read" in lines[1]["error"]
    assert [m["content"] for m in server.messages("c1")] == ["before", "after"]


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_cursor_file_is_a_usage_error(name: str) -> None:
    """`--cursor-file "$UNSET"` in a crontab: exit 2 before anything connects, not a listen
    that silently keeps no cursor."""
    result = run("listen", "--cursor-file", name, "--no-follow", env=env_for("http://127.0.0.1:9"))
    assert result.code == 2, result.err
    assert "--cursor-file is empty (an unset variable?)" in result.err


@pytest.mark.parametrize("name", ["/dev/null", "."], ids=["device", "directory"])
def test_a_cursor_file_that_is_not_a_regular_file_is_a_usage_error(name: str) -> None:
    """/dev/null or a directory: exit 2 naming it, and no FILE.lock made beside it."""
    result = run("listen", "--cursor-file", name, "--no-follow", env=env_for("http://127.0.0.1:9"))
    assert result.code == 2, result.err
    assert f"the cursor file {Path(name).expanduser()} is " in result.err
    assert not Path(f"{name}.lock").exists()


@pytest.mark.parametrize("since", ["99999999999999999999", "9007199254740992"])
def test_a_seq_past_any_log_is_a_usage_error(since: str) -> None:
    result = run("listen", "--since", since, "--no-follow", env=env_for("http://127.0.0.1:9"))
    assert result.code == 2, result.err
    assert f"--since {since} is past any seq an event log can have" in result.err


def test_a_seq_past_this_log_says_so(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server")
    result = run("listen", "--since", "12345", "--no-follow", env=env_for(server.url, TOKEN))
    assert result.code == 2, result.err
    assert "--since 12345 is past the newest event of this user's log" in result.err


@pytest.mark.parametrize(
    ("error", "status"),
    [(28, 75), (122, 75), (13, 2), (30, 2)],
    ids=["ENOSPC", "EDQUOT", "EACCES", "EROFS"],
)
def test_a_cursor_that_cannot_be_saved_says_whether_it_may_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, status: int
) -> None:
    """A full disk (or quota) is exit 75, worth a restart later; a folder that cannot be written
    is exit 2, for a person to fix. (A full disk cannot be made in a test without root: the
    write fails here by hand.)"""
    import os

    from prismer_cli.errors import PrismerError
    from prismer_cli.listen.cursorfile import CursorFile

    def fail(fd: int, data: bytes) -> int:
        raise OSError(error, os.strerror(error))

    folder = tmp_path / "state"
    cursor = CursorFile(str(folder / "inbox.cursor"))
    monkeypatch.setattr(os, "write", fail)
    with pytest.raises(PrismerError) as caught:
        cursor.save(7, "http://h", "usr_1", "docs")
    assert caught.value.status == status
    assert f"cannot save the cursor to {folder / 'inbox.cursor'}: " in str(caught.value)
    assert list(folder.iterdir()) == []  # no temporary file left behind
