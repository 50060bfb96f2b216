"""The human views through the real command: --pretty, --format, --color, --json, the config
key `output` and PRISMER_RT_OUTPUT, in both dialects, over WebSocket and SSE."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.support.cli import (
    Background,
    accepted_connections,
    env_for,
    run,
    user_id,
    wait_for_connections,
)
from tests.support.serverfixture import ServerProcess
from tests.support.terminal import Terminal

TIME = r"\d\d:\d\d:\d\d\.\d\d\d"
ESC = "\x1b["


@pytest.fixture
def server(dialect_server: ServerProcess) -> ServerProcess:
    return dialect_server


def listening(server: ServerProcess, *args: str, **env: str) -> Background:
    before = len(accepted_connections(server.log()))
    proc = Background(*args, env=env_for(server.url, "alice", **env))
    wait_for_connections(server, before + 1)
    return proc


def joined(server: ServerProcess, conversation: str) -> None:
    """Alice and Bob in one conversation (the server dialect creates it on a join)."""
    for token in ("alice", "bob"):
        stdin = f'{{"action":"subscribe","conversationId":"{conversation}"}}\n'
        result = run("send", input=stdin, env=env_for(server.url, token))
        assert result.code == 0, result.err


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_pretty_one_line_per_event(server: ServerProcess, transport: str) -> None:
    """--pretty: time, type, whole conversation id, the sender's name, the content with its
    further lines indented; a task's id and status; a presence change's name and status;
    compact JSON for anything else; the connection's lifecycle without --meta."""
    conv = f"conv-pretty-{transport}-0123456789abcdef"
    joined(server, conv)
    kinds = ("message.new", "task.updated", "presence.changed", "custom.thing")
    types = [arg for kind in kinds for arg in ("--type", kind)]
    proc = listening(server, "listen", "--pretty", "--count", "4", "--transport", transport, *types)
    alice, bob = user_id("alice"), user_id("bob")
    result = run("send", conv, "hello\nsecond line", env=env_for(server.url, "bob"))
    assert result.code == 0, result.err
    server.emit("task.updated", {"taskId": "t1", "status": "done"}, to=alice)
    server.emit("presence.changed", {"userId": bob, "status": "away"}, to=alice)
    server.emit("custom.thing", {"b": [1, 2], "s": "x"}, to=alice)
    result = proc.wait()
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert re.fullmatch(
        rf"{TIME} \* connected over {transport}, {server.dialect} dialect.*", lines[0]
    )
    assert re.fullmatch(rf"{TIME} message\.new {conv} Bob: hello", lines[1]), lines
    assert lines[2] == " " * lines[1].index("hello") + "second line"
    assert re.fullmatch(rf"{TIME} task\.updated t1 done", lines[3])
    # the server dialect's look-up names him; the docs dialect has none: the id, then
    who = "Bob" if server.dialect == "server" else bob
    assert re.fullmatch(rf"{TIME} presence\.changed {who} away", lines[4])
    assert re.fullmatch(rf'{TIME} custom\.thing {{"b":\[1,2\],"s":"x"}}', lines[5])
    assert len(lines) == 6 and ESC not in result.out  # piped: no colour, nothing cut


def test_pretty_stored_events_show_their_seq(server: ServerProcess) -> None:
    """An event read from the log shows its seq; the seam is a line of its own."""
    conv = "conv-stored"
    joined(server, conv)
    assert run("send", conv, "kept", env=env_for(server.url, "bob")).code == 0
    args = ("listen", "--since", "all", "--no-follow", "--pretty")
    result = run(*args, env=env_for(server.url, "bob"))
    assert result.code == 0, result.err
    line = next(x for x in result.out.splitlines() if "kept" in x)
    who = "Bob" if server.dialect == "server" else user_id("bob")  # the log has no names
    assert re.fullmatch(rf"{TIME} #\d+ message\.new {conv} {who}: kept", line)


def test_pretty_shows_a_server_error_about_the_connection(server: ServerProcess) -> None:
    """An error frame that is no event (here an eviction notice) is a line of its own in the
    pretty view; NDJSON leaves it to stderr."""
    eviction = {"message": "Connection replaced by newer client"}
    pretty = listening(server, "listen", "--pretty", "--timeout", "1.5")
    plain = listening(server, "listen", "--timeout", "1.5")
    server.emit("error", eviction, to=user_id("alice"))
    shown, ndjson = pretty.wait(), plain.wait()
    assert re.search(rf"^{TIME} ! error Connection replaced by newer client$", shown.out, re.M)
    assert "error" not in ndjson.out


def test_color_by_family(server: ServerProcess) -> None:
    """--color always colours each type by its family; auto into a pipe does not."""
    alice = user_id("alice")
    coloured = listening(server, "listen", "--pretty", "--color", "always", "--count", "2")
    auto = listening(server, "listen", "--pretty", "--count", "2")
    server.emit("task.updated", {"taskId": "t9", "status": "done"}, to=alice)
    server.emit("error", {"message": "bad", "code": "X"}, to=alice)
    a, b = coloured.wait(), auto.wait()
    assert f"{ESC}33mtask.updated{ESC}0m" in a.out
    assert f"{ESC}1;31m! error{ESC}0m" in a.out
    assert ESC not in b.out and "! error bad (X)" in b.out


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_format_template(server: ServerProcess, transport: str) -> None:
    """--format: fields by dotted path, {received} in ISO 8601, escapes, braces, a missing
    field empty, objects as compact JSON; with --meta the lifecycle goes through it too."""
    template = "{{{type}}} {payload.content} [{payload.nope}] {payload.meta} {payload.n} {received}"
    proc = listening(
        server, "listen", "--format", template, "--meta", "--count", "1", "--transport", transport
    )
    payload = {"content": "a\nb\tc\rd", "meta": {"k": [1]}, "n": 3}
    server.emit("custom.thing", payload, to=user_id("alice"))
    result = proc.wait()
    assert result.code == 0, result.err
    connected, line = result.out.splitlines()
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
    assert re.fullmatch(rf"\{{prismer-rt\.connected\}}  \[\]   {iso}", connected)
    assert re.fullmatch(rf'\{{custom\.thing\}} a\\nb\\tc\\rd \[\] {{"k":\[1\]}} 3 {iso}', line)


def test_output_options_exclude_each_other(tmp_path: Path) -> None:
    """--pretty, --format and --json together, or an unclosed {, are usage errors (exit 2)."""
    env = env_for("http://127.0.0.1:9", "alice")
    for args in (["--pretty", "--json"], ["--pretty", "--format", "{type}"], ["--format", "{type"]):
        result = run("listen", *args, env=env)
        assert result.code == 2 and result.out == "", (args, result.err)
    assert "not closed" in run("listen", "--format", "x {type", env=env).err
    assert run("send", "c", "x", "--pretty", "--json", env=env).code == 2


def test_pretty_by_config_and_environment(server: ServerProcess, tmp_path: Path) -> None:
    """`output = "pretty"` (top level or a profile) and PRISMER_RT_OUTPUT=pretty make pretty the
    default; --json gives NDJSON back; a bad value is exit 2 naming where it came from."""
    config = tmp_path / "prismer-rt" / "config.toml"
    config.parent.mkdir()
    home = {"XDG_CONFIG_HOME": str(tmp_path)}
    args = ["listen", "--since", "all", "--no-follow", "--count", "1"]
    config.write_text('[profiles.eye]\noutput = "pretty"\n')
    by_profile = run(*args, "--profile", "eye", env=env_for(server.url, **home))
    assert re.match(TIME, by_profile.out), by_profile.err
    back = run(*args, "--profile", "eye", "--json", env=env_for(server.url, **home))
    assert orjson.loads(back.out)["type"]
    by_env = run(*args, env=env_for(server.url, PRISMER_RT_OUTPUT="pretty", **home))
    assert re.match(TIME, by_env.out), by_env.err
    shown = run("config", "show", "--profile", "eye", env=env_for(server.url, **home)).out
    assert re.search(r"^output +pretty +\(.*config\.toml \[profiles\.eye\]\)$", shown, re.M)
    config.write_text('output = "fancy"\n')
    bad = run(*args, env=env_for(server.url, **home))
    assert bad.code == 2 and "output must be one of json, pretty" in bad.err


def test_send_and_mark_read_results_pretty(server: ServerProcess) -> None:
    """send --pretty and mark-read --pretty: one readable line per result."""
    conv = "conv-results"
    joined(server, conv)
    stdin = f'{{"conversationId":"{conv}","content":"one"}}\nnot json\n'
    sent = run("send", "--pretty", input=stdin, env=env_for(server.url, "bob"))
    assert sent.code == 6, sent.err
    ok, bad = sent.out.splitlines()
    word = "confirmed" if server.dialect == "server" else "sent"
    assert re.fullmatch(rf"{TIME} {word} send_message {conv} line 1: .+", ok)
    assert re.fullmatch(rf"{TIME} failed line 2: not valid JSON", bad)
    read = run("mark-read", conv, "--pretty", env=env_for(server.url, "bob"))
    assert re.fullmatch(rf"{TIME} confirmed mark_read {conv}\n", read.out), read.err


def test_pretty_cut_to_the_terminal_width(server: ServerProcess) -> None:
    """On a terminal a line is cut to its width, and coloured unless NO_COLOR or TERM=dumb
    say not; piped, nothing is cut (the tests above)."""
    alice = user_id("alice")
    before = len(accepted_connections(server.log()))
    args = ("listen", "--pretty", "--count", "1", "--type", "custom.long")
    terminals = {
        colour: Terminal(*args, env=env_for(server.url, "alice", **extra), columns=40)
        for colour, extra in (
            (True, {"TERM": "xterm"}),
            (False, {"TERM": "xterm", "NO_COLOR": "1"}),
            (None, {"TERM": "dumb"}),
        )
    }
    wait_for_connections(server, before + 3)
    server.emit("custom.long", {"text": "x" * 200}, to=alice)
    for colour, term in terminals.items():
        assert term.wait() == 0
        line = next(x for x in term.screen.splitlines() if "custom.long" in x)
        visible = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip("\r")
        assert len(visible) == 40 and visible.endswith("x…"), term.screen
        assert (ESC in line) is bool(colour)
