"""Tokens over months (issue 13): refresh before expiry and while listening, saved back where the
token came from, register, whoami, SIGHUP; and no token in any stream of any test here."""

from __future__ import annotations

import io
import json
import re
import signal
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from prismer_cli.auth.claims import claims_of
from prismer_cli.auth.keeper import TokenKeeper, TokenSource
from prismer_cli.auth.tomledit import NotEditable, replace_value
from prismer_cli.errors import AuthError
from prismer_cli.log import Log
from prismer_cli.transport import Endpoint, Resume
from tests.support.api import crafted
from tests.support.cli import (
    Background,
    Result,
    accepted_connections,
    env_for,
    run,
    user_id,
    wait_for_connections,
)
from tests.support.fakes import FakeConnection
from tests.support.serverfixture import ServerProcess

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
OPAQUE = ("tok-rotated-first-aaaa", "tok-rotated-second-bbbb")
STREAMS: list[str] = []  # every stdout and stderr of every command this file runs


@pytest.fixture(autouse=True)
def no_token_in_any_stream() -> Iterator[None]:
    """After each test: no JWT and no opaque test token in anything a command printed."""
    STREAMS.clear()
    yield
    for text in STREAMS:
        assert not JWT.search(text), text
        for token in OPAQUE:
            assert token not in text, text


def cli(*args: str, env: Mapping[str, str], timeout: float = 20) -> Result:
    result = run(*args, env=env, timeout=timeout)
    STREAMS.extend([result.out, result.err])
    return result


def finish(process: Background, timeout: float = 30) -> Result:
    result = process.wait(timeout)
    STREAMS.extend([result.out, result.err])
    return result


def registered(server: ServerProcess, username: str) -> str:
    """A JWT of a new user, straight from the server."""
    body = {"type": "agent", "username": username, "displayName": username}
    answer = requests.post(server.url + "/api/im/register", json=body, timeout=5)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["data"]["token"]
    return token


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def exp_of(token: str) -> float:
    claims = claims_of(token)
    assert claims is not None and claims.exp is not None
    return claims.exp


def emit_across_reconnects(server: ServerProcess, events: int, spacing: float) -> None:
    """Emit one event per connection (drop-after=1 ends each after its event)."""
    for i in range(events):
        wait_for_connections(server, i + 1, timeout=15)
        time.sleep(spacing)
        server.emit("task.updated", {"taskId": f"t{i}", "i": i})


def printed(result: Result) -> list[int]:
    return [line["payload"]["i"] for line in result.lines]


# -- refresh while listening, saved where the token came from -------------------------------


def test_listen_runs_across_three_expiries_and_keeps_the_token_file_fresh(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(token_ttl=2, faults=["drop-after=1"])
    first = registered(server, "long-runner")
    token_file = write(tmp_path / "token", first + "\n")
    started = time.monotonic()
    env = env_for(server.url, token=None)
    listen = Background("listen", "-v", "--count", "6", "--token-file", str(token_file), env=env)
    emit_across_reconnects(server, 6, spacing=1.1)
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == list(range(6))
    assert time.monotonic() - started > 6  # three 2-second lifetimes
    saved = token_file.read_text()
    assert saved.endswith("\n") and saved.count("\n") == 1
    assert exp_of(saved.strip()) >= exp_of(first) + 4
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "refreshed the token" in result.err
    users = {r["user"] for r in accepted_connections(server.log())}
    assert users == {claims_of(first).sub}  # type: ignore[union-attr]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".token.")]  # no temp left


def test_a_durable_listen_reads_the_log_with_the_refreshed_token(
    server_factory: Any, tmp_path: Path
) -> None:
    """--cursor-file across expiries: the log is read with the current token, so every live
    event finds its place in the log and the next run starts after the last one. (Lifetimes
    of 3 s: a refreshed token of 2 s, with a second or less left, expired on a loaded machine
    before the log was read with it.)"""
    server = server_factory(dialect="server", token_ttl=3, faults=["drop-after=1"])
    token_file = write(tmp_path / "token", registered(server, "durable-runner") + "\n")
    cursor = tmp_path / "state" / "inbox.cursor"
    env = env_for(server.url, token=None)
    common = ("--token-file", str(token_file), "--cursor-file", str(cursor))
    listen = Background("listen", "-v", "--count", "4", *common, env=env)
    me = claims_of(token_file.read_text().strip()).sub  # type: ignore[union-attr]
    for i in range(4):
        wait_for_connections(server, i + 1, timeout=15)
        time.sleep(1.1)
        payload = {"id": f"m{i}", "conversationId": "c1", "content": "v", "i": i}
        server.emit("message.edit", payload, to=me)
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == [0, 1, 2, 3]
    assert "rejected the token" not in result.err
    assert "refreshed the token" in result.err  # across an expiry, as it says
    assert json.loads(cursor.read_text())["cursor"] == server.sync_head()
    again = cli("listen", "--no-follow", *common, env=env)
    STREAMS.extend([again.out, again.err])
    assert again.code == 0, again.err
    assert again.out == ""


def test_the_sdk_config_file_keeps_every_other_byte(
    server_factory: Any, isolated_home: Path
) -> None:
    server = server_factory(token_ttl=2, faults=["drop-after=1"])
    first = registered(server, "sdk-user")
    template = (
        "# written by prismer-py register\r\n"
        "[default]\n"
        f'base_url = "{server.url}"   # the server\n'
        "environment = 'self-hosted'\n"
        "\n"
        "[auth]\n"
        "# the IM token\n"
        'im_token = "{token}"  # keep this comment\n'
        'api_key = "sk-not-a-token"\n'
        "\n"
        '[profiles."other.one"]\n'
        'im_token = "left-alone"\n'
    )
    sdk = write(isolated_home / ".prismer" / "config.toml", template.format(token=first), 0o640)
    env = env_for(None, token=None)
    listen = Background("listen", "-v", "--count", "4", env=env)
    emit_across_reconnects(server, 4, spacing=1.2)
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == list(range(4))
    text = sdk.read_text()
    new = re.search(r'im_token = "([^"]+)"  # keep', text)
    assert new is not None and new.group(1) != first
    assert exp_of(new.group(1)) > exp_of(first)
    assert sdk.read_bytes() == template.format(token=new.group(1)).encode()
    assert stat.S_IMODE(sdk.stat().st_mode) == 0o640


def test_a_token_from_the_environment_is_refreshed_in_memory_only(
    server_factory: Any, isolated_home: Path
) -> None:
    server = server_factory(token_ttl=2, faults=["drop-after=1"])
    env = env_for(server.url, token=registered(server, "env-user"))
    listen = Background("listen", "-v", "--count", "4", env=env)
    emit_across_reconnects(server, 4, spacing=1.2)
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == list(range(4))
    assert "used in memory only and cannot be saved" in result.err
    assert "env PRISMER_TOKEN" in result.err
    assert [p for p in isolated_home.rglob("*") if p.is_file()] == []


def test_no_refresh_lets_the_token_expire(server_factory: Any, tmp_path: Path) -> None:
    # 5 s: time for listen to start and connect before its token expires, coverage included
    server = server_factory(token_ttl=5, faults=["drop-after=1"])
    token_file = write(tmp_path / "token", registered(server, "no-refresher") + "\n")
    expires = time.monotonic() + 5
    before = token_file.read_text()
    env = env_for(server.url, token=None)
    args = ("listen", "--no-refresh", "--token-file", str(token_file))
    listen = Background(*args, env=env)
    wait_for_connections(server, 1)
    time.sleep(max(0.0, expires + 0.2 - time.monotonic()))  # expired: the next one is refused
    server.emit("task.updated", {"i": 0})
    result = finish(listen)
    assert result.code == 3, result.err
    assert printed(result) == [0]
    assert "refreshing is off (--no-refresh" in result.err
    assert token_file.read_text() == before


def test_the_config_key_no_refresh_turns_refreshing_off(
    server_factory: Any, isolated_home: Path
) -> None:
    server = server_factory(token_ttl=2)
    token = registered(server, "config-norefresh")
    write(isolated_home / ".config" / "prismer-rt" / "config.toml", "no_refresh = true\n")
    env = env_for(server.url, token=token)
    time.sleep(2.1)
    result = cli("listen", "--timeout", "2", env=env)
    assert result.code == 3
    assert "refreshing is off" in result.err


# -- refused refreshes: exit 3 with what to do ----------------------------------------------


def test_an_expired_token_whose_refresh_is_refused_exits_3_quickly(
    server_factory: Any,
) -> None:
    server = server_factory()
    expired = crafted({"sub": "usr_nobody", "username": "ghost", "iat": 1, "exp": 2})
    started = time.monotonic()
    result = cli("listen", env=env_for(server.url, token=expired))
    assert result.code == 3
    assert time.monotonic() - started < 8
    assert "refused to refresh the token (HTTP 404: User not found)" in result.err
    assert "prismer-rt register" in result.err and "env PRISMER_TOKEN" in result.err
    assert "Traceback" not in result.err
    assert not accepted_connections(server.log())


def test_a_token_close_to_expiry_warns_once_and_quiet_silences_it(server_factory: Any) -> None:
    server = server_factory(token_ttl=3600)
    env = env_for(server.url, token=registered(server, "soon-expiring"))
    shown = cli("config", "show", env=env)
    assert shown.code == 0
    assert shown.err.count("warning: the token expires") == 1
    rows = {line.split()[0]: line for line in shown.out.splitlines()}
    assert "soon-expiring" in rows["user"] and "(in 59 min" in rows["expiry"]
    quiet = cli("-q", "config", "show", env=env)
    assert quiet.code == 0 and quiet.err == ""


# -- the reconnect that finds its token refused ----------------------------------------------


class Connector:
    """open_connection's stand-in: a scripted result per call, and the tokens it was given."""

    def __init__(self, *results: FakeConnection | AuthError) -> None:
        self.results = list(results)
        self.tokens: list[str] = []

    def __call__(self, endpoint: Endpoint, resume: Resume, log: Log) -> FakeConnection:
        self.tokens.append(endpoint.token)
        result = self.results.pop(0)
        if isinstance(result, AuthError):
            raise result
        return result


def keeper_for(url: str, token: str, connector: Connector) -> tuple[TokenKeeper, io.StringIO]:
    stream = io.StringIO()
    source = TokenSource(Endpoint(url=url, token=token), None, "env PRISMER_TOKEN")
    return TokenKeeper(source, Log(verbosity=1, stream=stream), connect=connector), stream


def test_a_refused_reconnect_refreshes_once_and_tries_once_more(server_factory: Any) -> None:
    server = server_factory()
    token = registered(server, "reconnector")  # 7 days: not due, so only the refusal refreshes
    refused = AuthError("the server rejected the token: AUTH_FAILED")
    connector = Connector(FakeConnection([]), refused, FakeConnection([]))
    keeper, stream = keeper_for(server.url, token, connector)
    endpoint = Endpoint(url=server.url, token=token)
    try:
        keeper.connect(endpoint, Resume(), Log())
        time.sleep(1.05)  # a refresh in the second of issue would answer the same token
        keeper.connect(endpoint, Resume(), Log())
    finally:
        keeper.close()
    assert connector.tokens[:2] == [token, token]
    assert connector.tokens[2] != token and keeper.refreshes == 1
    assert "refreshing it once" in stream.getvalue()
    assert token not in stream.getvalue() and connector.tokens[2] not in stream.getvalue()


def test_a_reconnect_refused_twice_exits_after_one_refresh(server_factory: Any) -> None:
    server = server_factory()
    token = registered(server, "refused-twice")
    refused = AuthError("the server rejected the token: AUTH_FAILED")
    connector = Connector(FakeConnection([]), refused, refused)
    keeper, _ = keeper_for(server.url, token, connector)
    endpoint = Endpoint(url=server.url, token=token)
    try:
        keeper.connect(endpoint, Resume(), Log())
        time.sleep(1.05)
        with pytest.raises(AuthError):
            keeper.connect(endpoint, Resume(), Log())
    finally:
        keeper.close()
    assert len(connector.tokens) == 3 and keeper.refreshes == 1


def test_a_refused_first_connection_is_not_refreshed(server_factory: Any) -> None:
    server = server_factory()
    token = registered(server, "first-refusal")
    connector = Connector(AuthError("the server rejected the token: AUTH_FAILED"))
    keeper, _ = keeper_for(server.url, token, connector)
    with pytest.raises(AuthError):
        keeper.connect(Endpoint(url=server.url, token=token), Resume(), Log())
    assert keeper.refreshes == 0 and connector.tokens == [token]


def test_a_refused_refresh_on_reconnect_says_what_to_do(server_factory: Any) -> None:
    server = server_factory()
    ghost = crafted({"sub": "usr_ghost", "username": "ghost", "iat": 1, "exp": 4102444800})
    refused = AuthError("the server rejected the token: AUTH_FAILED")
    connector = Connector(FakeConnection([]), refused)
    keeper, _ = keeper_for(server.url, ghost, connector)
    keeper.connect(Endpoint(url=server.url, token=ghost), Resume(), Log())
    with pytest.raises(AuthError, match=r"refused to refresh .* get a new token"):
        keeper.connect(Endpoint(url=server.url, token=ghost), Resume(), Log())
    assert len(connector.tokens) == 2


# -- register and whoami --------------------------------------------------------------------


def test_register_then_listen_from_a_fresh_home(server_factory: Any, isolated_home: Path) -> None:
    server = server_factory()
    env = env_for(None, token=None)
    made = cli("--url", server.url, "register", "fresh-agent", env=env)
    assert made.code == 0, made.err
    (record,) = made.lines
    assert record["username"] == "fresh-agent" and record["displayName"] == "fresh-agent"
    assert record["isNew"] is True and "token" not in record
    token_file = isolated_home / ".config" / "prismer-rt" / "token"
    assert record["tokenFile"] == str(token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    listen = Background("--url", server.url, "listen", "--count", "1", env=env)
    wait_for_connections(server, 1)
    server.emit("task.updated", {"i": 7})
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == [7]
    (connection,) = accepted_connections(server.log())
    assert connection["user"] == record["imUserId"]

    who = cli("--url", server.url, "whoami", env=env)
    assert who.code == 0, who.err
    (me,) = who.lines
    assert me["userId"] == record["imUserId"] and me["username"] == "fresh-agent"
    assert me["source"] == str(token_file) and me["expiresAt"].endswith("Z")


def test_register_refuses_to_overwrite_without_force(
    server_factory: Any, isolated_home: Path
) -> None:
    server = server_factory()
    env = env_for(server.url, token=None)
    assert cli("register", "first-one", "--type", "human", env=env).code == 0
    token_file = isolated_home / ".config" / "prismer-rt" / "token"
    before = token_file.read_text()
    again = cli("register", "second-one", env=env)
    assert again.code == 2 and "--force" in again.err
    assert token_file.read_text() == before
    forced = cli("register", "second-one", "--display-name", "Second", "--force", env=env)
    assert forced.code == 0, forced.err
    assert forced.lines[0]["displayName"] == "Second"
    assert token_file.read_text() != before
    taken = cli("register", "second-one", "--force", env=env)
    assert taken.code == 5 and "already taken" in taken.err


def test_register_checks_the_username_before_sending(server_factory: Any) -> None:
    server = server_factory()
    for bad in ("me", "has space", "x" * 33, "émile"):
        result = cli("register", bad, env=env_for(server.url, token=None))
        assert result.code == 2, bad
        assert "3 to 32 letters" in result.err
    assert not [r for r in server.log() if "register" in json.dumps(r)]


def test_register_writes_the_profiles_token_file(server_factory: Any, isolated_home: Path) -> None:
    server = server_factory()
    target = isolated_home / "tokens" / "staging"
    write(
        isolated_home / ".config" / "prismer-rt" / "config.toml",
        f'[profiles.staging]\nurl = "{server.url}"\ntoken_file = "{target}"\n',
    )
    env = env_for(None, token=None, PRISMER_PROFILE="staging")
    assert cli("register", "staged-agent", env=env).code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    who = cli("whoami", env=env)
    assert who.code == 0 and who.lines[0]["username"] == "staged-agent"


def test_whoami_exits_3_when_the_server_refuses_the_token(server_factory: Any) -> None:
    server = server_factory()
    expired = crafted({"sub": "usr_x", "username": "gone", "iat": 1, "exp": 2})
    result = cli("whoami", env=env_for(server.url, token=expired))
    assert result.code == 3
    assert "the token expired" in result.err and "get a new token" in result.err
    assert "listen and send refresh it by themselves" in result.err  # not "register" at once


# -- SIGHUP ---------------------------------------------------------------------------------


def test_sighup_uses_a_rotated_token_file_from_the_next_connection(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory()
    token_file = write(tmp_path / "token", OPAQUE[0] + "\n")
    env = env_for(server.url, token=None)
    listen = Background("listen", "-v", "--count", "2", "--token-file", str(token_file), env=env)
    wait_for_connections(server, 1)
    write(token_file, OPAQUE[1] + "\n")
    listen.interrupt(signal.SIGHUP)
    time.sleep(0.5)
    assert listen.proc.poll() is None  # the reload did not end the command
    assert len(accepted_connections(server.log())) == 1  # and kept the current connection
    server.set_faults(["drop-after=1"])
    server.emit("task.updated", {"i": 1}, to=user_id(OPAQUE[0]))
    wait_for_connections(server, 2)
    server.emit("task.updated", {"i": 2}, to=user_id(OPAQUE[1]))
    result = finish(listen)
    assert result.code == 0, result.err
    assert printed(result) == [1, 2]
    users = [r["user"] for r in accepted_connections(server.log())]
    assert users == [user_id(OPAQUE[0]), user_id(OPAQUE[1])]
    assert "re-read the configuration" in result.err


# -- the one-value TOML edit ----------------------------------------------------------------


def test_the_toml_edit_changes_one_value_or_refuses() -> None:
    text = '[auth]\r\nim_token = "a.b.c" # c\r\n[x]\nim_token = "same"\n'
    assert replace_value(text, ("auth",), "im_token", "d.e.f") == text.replace("a.b.c", "d.e.f")
    for odd in ('auth.im_token = "a.b.c"\n', '[auth]\nim_token = """a.b.c"""\n'):
        with pytest.raises(NotEditable):
            replace_value(odd, ("auth",), "im_token", "d.e.f")


def test_a_store_that_cannot_be_edited_warns_and_keeps_the_token_in_memory(
    server_factory: Any, isolated_home: Path
) -> None:
    server = server_factory(token_ttl=2)
    token = registered(server, "dotted-key")
    config = write(
        isolated_home / ".config" / "prismer-rt" / "config.toml",
        f'url = "{server.url}"\nprofiles.main.token = "{token}"\n',
    )
    before = config.read_bytes()
    env = env_for(None, token=None, PRISMER_PROFILE="main")
    time.sleep(1.1)  # due
    result = cli("listen", "--timeout", "1.5", env=env)
    assert result.code == 0, result.err
    assert "the refreshed token is used in memory only" in result.err
    assert config.read_bytes() == before


def test_send_refreshes_an_expired_token_before_connecting(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(token_ttl=2)
    first = registered(server, "sender")
    token_file = write(tmp_path / "token", first + "\n")
    time.sleep(2.1)  # expired: without a refresh the server refuses it (exit 3)
    result = cli(
        "send",
        "conv-1",
        "hello",
        "--token-file",
        str(token_file),
        env=env_for(server.url, token=None),
    )
    assert result.code == 0, result.err
    assert result.lines[0]["ok"] is True
    assert exp_of(token_file.read_text().strip()) > exp_of(first)
