"""The JWTs ``prismer-rt serve`` issues, as the real server's ``auth/jwt.ts`` signs them.

A token is ``header.payload.signature`` in base64url without padding, HS256 over the first
two parts with :data:`SECRET`, a fixed (public, test-only) key so tokens stay valid across a
restart of the stand-in. The claims are those of ``jsonwebtoken.sign`` with ``expiresIn``:
``{"sub", "username", "role", "agentType"?, "iat", "exp"}``, ``iat`` in whole seconds and
``exp = floor(iat + ttl)`` (``serve --token-ttl SECONDS``, default 604800 = 7 days). Two
tokens issued for one user in the same second are therefore the same string, as on the real
server. A token is expired from the second ``exp`` on (``jsonwebtoken.verify``).

``expiresIn`` in answers: the real server always says ``"7d"`` (hard-coded beside
``JWT_EXPIRES_IN``). The stand-in says what its ttl really is, in the ``ms``-package format
that ``JWT_EXPIRES_IN`` takes: ``"7d"`` for the default, ``"2h"``, ``"5m"``, ``"2s"`` for
whole units, ``"1500ms"`` for fractions (:func:`expires_in`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any

SECRET = b"prismer-rt-serve: a local stand-in secret, not for production"
HEADER = {"alg": "HS256", "typ": "JWT"}
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class TokenRejected(Exception):
    """A token ``jsonwebtoken.verify`` refuses; ``reason`` is malformed, signature or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_part(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(_b64decode(text))
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _signature(signing_input: str) -> str:
    return _b64encode(hmac.new(SECRET, signing_input.encode("ascii"), hashlib.sha256).digest())


def issue(claims: dict[str, Any], ttl: float, now: float | None = None) -> str:
    """A signed token for these claims (``sub``, ``username``, ``role``, ...), valid ``ttl`` s."""
    iat = math.floor(time.time() if now is None else now)
    payload = {k: v for k, v in claims.items() if v is not None}
    payload.update(iat=iat, exp=math.floor(iat + ttl))
    compact = json.dumps(HEADER, separators=(",", ":")), json.dumps(payload, separators=(",", ":"))
    signing_input = ".".join(_b64encode(part.encode()) for part in compact)
    return f"{signing_input}.{_signature(signing_input)}"


def decode(token: str) -> dict[str, Any] | None:
    """The claims without any check (``jsonwebtoken.decode``), None when not a JWT at all."""
    if not _JWS.match(token):
        return None
    header_text, payload_text, _ = token.split(".")
    if _json_part(header_text) is None:
        return None
    return _json_part(payload_text)


def signed_by_us(token: str) -> bool:
    """Whether the signature is this server's HS256 one (expiry not considered)."""
    if decode(token) is None:
        return False
    header = _json_part(token.split(".")[0]) or {}
    signing_input, _, signature = token.rpartition(".")
    return header.get("alg") == "HS256" and hmac.compare_digest(
        signature, _signature(signing_input)
    )


def is_expired(claims: dict[str, Any], now: float | None = None) -> bool:
    """``exp`` reached (whole seconds, as ``jsonwebtoken.verify`` counts); False without one."""
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return False
    return math.floor(time.time() if now is None else now) >= exp


def verify(token: str, now: float | None = None) -> dict[str, Any]:
    """The claims of a token signed by this server and not expired; else TokenRejected."""
    claims = decode(token)
    if claims is None:
        raise TokenRejected("malformed")
    if not signed_by_us(token):
        raise TokenRejected("signature")
    if is_expired(claims, now):
        raise TokenRejected("expired")
    return claims


def expires_in(ttl: float) -> str:
    """A ttl in seconds in the ``ms`` package's format: ``"7d"``, ``"2s"``, ``"1500ms"``."""
    if ttl > 0 and float(ttl).is_integer():
        seconds = int(ttl)
        for unit, size in _UNITS:
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
    return f"{round(ttl * 1000)}ms"
