"""What a JWT says about itself, read locally: `sub`, `username`, `iat`, `exp`.

The signature is not checked: that is the server's job. A token that is not a JWT (an opaque
test token) has no claims and is never refreshed.

When a token is due for a refresh (docs/cli.md "register and whoami"): once less than
`min(24 h, half its lifetime)` remains, the lifetime being `exp - iat`. A 7-day token is
refreshed on its sixth day; a 2-second test token after one second. A token that lives less
than a day is thus never refreshed over and over: each new one waits half its own life.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime, timezone

import orjson

from prismer_cli.records import Frozen

DAY = 86400.0


class Claims(Frozen):
    sub: str | None
    username: str | None
    iat: float | None
    exp: float | None

    def __init__(
        self, sub: str | None, username: str | None, iat: float | None, exp: float | None
    ) -> None:
        self._init(locals())

    @property
    def lifetime(self) -> float | None:
        """`exp - iat`, when the token says both."""
        if self.exp is None or self.iat is None:
            return None
        return self.exp - self.iat

    def window(self) -> float:
        """How long before `exp` the token is due for a refresh."""
        lifetime = self.lifetime
        return DAY if lifetime is None or lifetime <= 0 else min(DAY, lifetime / 2)

    def due_at(self) -> float | None:
        """The wall-clock time from which the token is due for a refresh; None: never."""
        return None if self.exp is None else self.exp - self.window()

    def expired(self, now: float | None = None) -> bool:
        """`exp` reached, in whole seconds as the server counts."""
        return self.exp is not None and int(time.time() if now is None else now) >= self.exp


def _part(text: str) -> object:
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def claims_of(token: str | None) -> Claims | None:
    """The claims of a JWT, None for anything else."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not isinstance(_part(parts[0]), dict):
        return None
    payload = _part(parts[1])
    if not isinstance(payload, dict):
        return None
    return Claims(
        _text(payload.get("sub")),
        _text(payload.get("username")),
        _number(payload.get("iat")),
        _number(payload.get("exp")),
    )


def iso(seconds: float) -> str:
    """A time as ISO 8601 UTC, to the second: `2026-12-01T10:00:00Z`."""
    moment = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: float) -> str:
    """A duration for people: `6 d 23 h`, `5 h 3 min`, `42 s`."""
    seconds = int(seconds)
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} {seconds % size // smaller} {small_unit}"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


def expiry_note(claims: Claims | None, now: float | None = None) -> str | None:
    """`expires 2026-12-01T10:00:00Z (in 6 d 23 h)` or `expired ... (2 h ago)`; None without exp."""
    if claims is None or claims.exp is None:
        return None
    now = time.time() if now is None else now
    if claims.expired(now):
        return f"expired {iso(claims.exp)} ({span(now - claims.exp)} ago)"
    return f"expires {iso(claims.exp)} (in {span(claims.exp - now)})"


def expiry_warning(claims: Claims | None, now: float | None = None) -> str | None:
    """The warning for a token that expires within a day (or has expired), else None."""
    now = time.time() if now is None else now
    if claims is None or claims.exp is None or claims.exp - now >= DAY:
        return None
    return f"the token {expiry_note(claims, now)}"
