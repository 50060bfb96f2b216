"""The stand-in server's tokens: JWTs from register and refresh with ``--token-ttl``, expiry
refused on every transport, and the shapes of ``api/register.ts`` and ``api/me.ts``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from prismer_cli.server.tokens import SECRET
from tests.support.api import b64, call, crafted
from tests.support.cli import run
from tests.support.serverfixture import ServerFactory, ServerProcess, running_server

TIMEOUT = 3.0


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = "=" * (-len(payload) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload + pad))
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))), claims


def register(server: ServerProcess, name: str, **extra: Any) -> dict[str, Any]:
    username = f"{name}_{uuid.uuid4().hex[:6]}"
    body = {"type": "agent", "username": username, "displayName": name, **extra}
    answer = call(server, "POST", "/api/im/register", json=body)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def wait_until(check: Callable[[], bool], limit: float = 4.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def server_ws_first_frame(server: ServerProcess, token: str) -> dict[str, Any]:
    ws = websocket.create_connection(f"{server.ws_url}/ws?token={token}", timeout=TIMEOUT)
    try:
        frame: dict[str, Any] = json.loads(ws.recv())
    finally:
        ws.close()
    return frame


# ── register ─────────────────────────────────────────────────────────────


def test_register_issues_a_signed_jwt_with_the_ttl(server_factory: ServerFactory) -> None:
    """201 with the transcript's fields; the token is HS256 over header.payload with sub,
    username, role, agentType, iat and exp = iat + ttl; expiresIn says the ttl."""
    server = server_factory(extra_args=["--token-ttl", "60"])
    data = register(server, "jwt", capabilities=["chat"])
    assert list(data) == [
        "imUserId",
        "username",
        "displayName",
        "role",
        "token",
        "expiresIn",
        "capabilities",
        "isNew",
    ]
    assert (data["expiresIn"], data["capabilities"], data["isNew"]) == ("1m", ["chat"], True)
    header, claims = parts(data["token"])
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert list(claims) == ["sub", "username", "role", "agentType", "iat", "exp"]
    assert (claims["sub"], claims["username"]) == (data["imUserId"], data["username"])
    assert (claims["role"], claims["agentType"]) == ("agent", "assistant")
    assert claims["exp"] == claims["iat"] + 60 and abs(claims["iat"] - time.time()) < 5
    signing_input, _, signature = data["token"].rpartition(".")
    expected = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    assert signature == b64(expected)


def test_register_validates_like_the_real_server(server_factory: ServerFactory) -> None:
    server = server_factory()

    def post(body: dict[str, Any]) -> requests.Response:
        return call(server, "POST", "/api/im/register", json=body)

    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"type": "robot", "username": "abc"}, 'type must be "agent" or "human"'),
        ({"type": "agent", "displayName": "A"}, "username is required"),
        (
            {"type": "agent", "username": "no spaces", "displayName": "A"},
            "username must be 3-32 characters, alphanumeric, underscore, or hyphen",
        ),
        ({"type": "agent", "username": "ab", "displayName": "A"}, None),
        ({"type": "agent", "username": "abc_ok"}, "displayName is required"),
        (
            {"type": "agent", "username": "abc_ok", "displayName": "A", "agentType": "x"},
            "agentType must be one of: assistant, specialist, orchestrator, tool, bot",
        ),
    ]
    for body, error in cases:
        answer = post(body)
        assert answer.status_code == 400, body
        if error is not None:
            assert answer.json() == {"ok": False, "error": error}
    human = post({"type": "human", "username": "hum_" + uuid.uuid4().hex[:6], "displayName": "H"})
    assert human.status_code == 201 and "capabilities" not in human.json()["data"]
    assert parts(human.json()["data"]["token"])[1]["role"] == "human"
    name = human.json()["data"]["username"]
    taken = post({"type": "agent", "username": name, "displayName": "dup"})
    assert (taken.status_code, taken.json()["error"]) == (
        409,
        f"Username '{name}' is already taken",
    )
    me = call(server, "GET", "/api/im/me", human.json()["data"]["token"]).json()["data"]
    assert me["user"]["role"] == "human" and "agentCard" not in me
    own = call(
        server,
        "POST",
        "/api/im/register",
        human.json()["data"]["token"],
        json={"type": "human", "username": name, "displayName": "Renamed"},
    )
    assert own.status_code == 200
    assert (own.json()["data"]["isNew"], own.json()["data"]["imUserId"]) == (
        False,
        human.json()["data"]["imUserId"],
    )


# ── refresh ──────────────────────────────────────────────────────────────


def test_refresh_renews_even_an_expired_token(server_factory: ServerFactory) -> None:
    """--token-ttl 1: the token expires within ~1 s and is refused by REST, WebSocket and SSE;
    /token/refresh still answers a fresh one for the same user."""
    server = server_factory(dialect="server", extra_args=["--token-ttl", "1"])
    data = register(server, "exp")
    token, user_id = data["token"], data["imUserId"]
    assert data["expiresIn"] == "1s"
    wait_until(lambda: call(server, "GET", "/api/im/me", token).status_code == 401)
    assert call(server, "GET", "/api/im/me", token).json() == {
        "ok": False,
        "error": "Invalid or expired token",
    }
    refused = server_ws_first_frame(server, token)
    assert refused["type"] == "error"
    assert refused["payload"] == {"message": "Invalid token", "code": "AUTH_FAILED"}
    assert call(server, "GET", f"/sse?token={token}").status_code == 401
    answer = call(server, "POST", "/api/im/token/refresh", token)
    assert answer.status_code == 200
    assert list(answer.json()) == ["ok", "data"] and list(answer.json()["data"]) == [
        "token",
        "expiresIn",
    ]
    fresh = answer.json()["data"]["token"]
    assert parts(fresh)[1]["sub"] == user_id
    ok = server_ws_first_frame(server, fresh)
    assert ok["type"] == "authenticated" and ok["payload"] == {"userId": user_id}


def test_refresh_errors_and_same_second_tokens(server_factory: ServerFactory) -> None:
    server = server_factory(tokens=["opaque-one=Op"])
    token = register(server, "ref")["token"]

    def refresh(token: str) -> requests.Response:
        return call(server, "POST", "/api/im/token/refresh", token)

    missing = call(server, "POST", "/api/im/token/refresh")
    assert (missing.status_code, missing.json()["error"]) == (401, "Missing Authorization header")
    for bad in ("not-a-jwt", "opaque-one", "a.b.c"):
        answer = refresh(bad)
        assert (answer.status_code, answer.json()) == (401, {"ok": False, "error": "Invalid token"})
    unknown = refresh(crafted({"sub": "usr_nobody", "username": "x", "role": "agent"}))
    assert (unknown.status_code, unknown.json()) == (404, {"ok": False, "error": "User not found"})
    # iat is in whole seconds: two refreshes within one second can answer the same string
    for _ in range(5):
        first, second = refresh(token).json()["data"], refresh(token).json()["data"]
        if parts(first["token"])[1]["iat"] == parts(second["token"])[1]["iat"]:
            assert first == second
            break
    else:
        pytest.fail("no two refreshes fell within one second")
    assert first["expiresIn"] == "7d"


# ── which tokens are accepted ────────────────────────────────────────────


def test_open_mode_trusts_crafted_jwts_but_not_expired_ones(server_factory: ServerFactory) -> None:
    """Open mode checks no signature (tests craft tokens) but refuses a past exp everywhere;
    a crafted token stands for the user of its sub."""
    server = server_factory(dialect="docs")
    now = int(time.time())
    live = crafted({"sub": "usr_crafted1", "username": "crafty", "role": "agent", "exp": now + 600})
    dead = crafted({"sub": "usr_crafted2", "username": "old", "role": "agent", "exp": now - 1})
    me = call(server, "GET", "/api/im/me", live)
    assert me.status_code == 200 and me.json()["data"]["user"]["id"] == "usr_crafted1"
    assert me.json()["data"]["user"]["username"] == "crafty"
    assert call(server, "GET", "/api/im/me", dead).status_code == 401
    assert call(server, "GET", f"/api/im/events/stream?token={dead}").status_code == 401
    ws = websocket.create_connection(f"{server.ws_url}/ws?token={dead}", timeout=TIMEOUT)
    try:
        assert json.loads(ws.recv())["type"] == "auth_error"
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", data[:2])[0] == 4001
    finally:
        ws.shutdown()  # type: ignore[no-untyped-call]
    assert call(server, "GET", "/api/im/me", "any-opaque-token").status_code == 200


def test_closed_mode_takes_its_tokens_and_its_own_jwts_only(server_factory: ServerFactory) -> None:
    server = server_factory(dialect="server", tokens=["fixed-token=Fixed"])
    assert call(server, "GET", "/api/im/me", "fixed-token").status_code == 200
    assert call(server, "GET", "/api/im/me", "other-token").status_code == 401
    forged = crafted({"sub": "usr_x", "username": "x", "role": "agent", "exp": 2**40})
    assert call(server, "GET", "/api/im/me", forged).status_code == 401
    issued = register(server, "closed")["token"]
    assert call(server, "GET", "/api/im/me", issued).status_code == 200


def test_issued_tokens_survive_a_restart(tmp_path: Path) -> None:
    """The secret is fixed: a token from one run is still good in the next one, for the same
    user id, and can be refreshed there."""
    with running_server(tmp_path / "one", dialect="server") as first:
        data = register(first, "keep")
    with running_server(tmp_path / "two", dialect="server", tokens=["x"]) as second:
        me = call(second, "GET", "/api/im/me", data["token"])
        assert me.status_code == 200 and me.json()["data"]["user"]["id"] == data["imUserId"]
        refreshed = call(second, "POST", "/api/im/token/refresh", data["token"])
        assert refreshed.status_code == 200


def test_token_ttl_must_be_positive() -> None:
    result = run("serve", "--port", "0", "--token-ttl", "0", timeout=10)
    assert result.code == 2 and "token-ttl must be a positive number" in result.err
