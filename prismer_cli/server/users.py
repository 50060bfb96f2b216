"""Who a token stands for, and ``POST /register``: the stand-in server's user directory.

Users and tokens
    With ``--token`` values the server accepts only those (``TOKEN=NAME`` sets the display
    name); without any it runs in *open mode* and accepts every non-empty token. A user's id is
    stable per token, ``"usr_" + sha256(token)[:12]``, so a script can predict it; the default
    name is ``"agent-"`` and the first six hex digits of that hash. ``--token`` tokens are
    opaque and never expire.

    ``POST /api/im/register`` and ``/api/im/token/refresh`` hand out JWTs
    (:mod:`~prismer_cli.server.tokens`) for ``token_ttl`` seconds. A JWT signed by this server
    and not expired is accepted in either mode and stands for the user of its ``sub`` (a user
    unknown since a restart is re-created from the claims, as the real server's database would
    still hold it); an expired one is refused everywhere. In open mode the signature is *not*
    checked, so tests can craft tokens: any JWT-shaped token is the user of its ``sub`` unless
    its ``exp`` has passed, then it is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import Any

from prismer_cli.server import tokens
from prismer_cli.server.records import User

DEFAULT_TOKEN_TTL = 604800.0
USERNAME = re.compile(r"^[a-zA-Z0-9_-]{3,32}$")
AGENT_TYPES = ("assistant", "specialist", "orchestrator", "tool", "bot")


class RegistrationError(Exception):
    """A ``/register`` request the real server refuses; carries the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def user_id_for_token(token: str) -> str:
    return "usr_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def default_name_for_token(token: str) -> str:
    return "agent-" + hashlib.sha256(token.encode()).hexdigest()[:6]


def parse_token_spec(spec: str) -> tuple[str, str | None]:
    """``"TOKEN"`` or ``"TOKEN=NAME"`` → (token, name or None). Raises ValueError if empty."""
    token, sep, name = spec.partition("=")
    if not token:
        raise ValueError("a --token value must not be empty")
    return token, (name or None) if sep else None


class UserDirectory:
    """The users, the tokens that stand for them, and registration."""

    def __init__(
        self, token_specs: Iterable[str] = (), *, token_ttl: float = DEFAULT_TOKEN_TTL
    ) -> None:
        self._users: dict[str, User] = {}
        self._token_users: dict[str, str] = {}
        self._usernames: dict[str, str] = {}
        self.token_ttl = token_ttl
        specs = list(token_specs)
        self.open_mode = not specs
        for spec in specs:
            token, name = parse_token_spec(spec)
            self._add_token_user(token, name)

    def _add_token_user(self, token: str, name: str | None) -> User:
        uid = user_id_for_token(token)
        user = self._users.get(uid)
        if user is None:
            label = name or default_name_for_token(token)
            user = User(id=uid, username=label, display_name=label)
            self._users[uid] = user
            self._usernames.setdefault(label, uid)
        self._token_users[token] = uid
        return user

    def user_for_token(self, token: str | None) -> User | None:
        """The user a token stands for, or None when the token is not accepted."""
        if not token:
            return None
        uid = self._token_users.get(token)
        if uid is not None:
            return self._users[uid]
        claims = tokens.decode(token)
        if claims is not None and (self.open_mode or tokens.signed_by_us(token)):
            if tokens.is_expired(claims):
                return None
            user = self.user_from_claims(claims)
            if user is not None:
                return user
        if self.open_mode:
            return self._add_token_user(token, None)
        return None

    def user_from_claims(self, claims: dict[str, Any]) -> User | None:
        """The user of a JWT's ``sub``, created from its claims when unknown (None without)."""
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            return None
        user = self._users.get(sub)
        if user is None:
            username = claims.get("username")
            name = username if isinstance(username, str) and username else sub
            role = claims.get("role") if claims.get("role") in ("agent", "human") else "agent"
            agent_type = claims.get("agentType")
            user = User(
                id=sub,
                username=name,
                display_name=name,
                role=str(role),
                agent_type=agent_type if isinstance(agent_type, str) else None,
            )
            self._users[sub] = user
            self._usernames.setdefault(name, sub)
        return user

    def issue_token(self, user: User) -> str:
        """A JWT for this user, valid ``token_ttl`` seconds."""
        claims = {
            "sub": user.id,
            "username": user.username,
            "role": user.role,
            "agentType": user.agent_type if user.role == "agent" else None,
        }
        return tokens.issue(claims, self.token_ttl)

    def user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def find_user(self, id_or_username: str) -> User | None:
        """A user by id, or else by username, as the real server resolves a target."""
        user = self._users.get(id_or_username)
        if user is None and id_or_username in self._usernames:
            user = self._users.get(self._usernames[id_or_username])
        return user

    def register(self, body: dict[str, Any], caller: User | None = None) -> tuple[User, bool]:
        """``POST /register`` as ``api/register.ts`` checks it: (user, is new) or a
        RegistrationError. ``caller`` is the user of a valid Bearer JWT, who is updated."""
        kind = body.get("type")
        if kind not in ("agent", "human"):
            raise RegistrationError(400, 'type must be "agent" or "human"')
        username = body.get("username")
        if not username:
            raise RegistrationError(400, "username is required")
        if not isinstance(username, str) or not USERNAME.match(username):
            message = "username must be 3-32 characters, alphanumeric, underscore, or hyphen"
            raise RegistrationError(400, message)
        display = body.get("displayName")
        if not display:
            raise RegistrationError(400, "displayName is required")
        agent_type = body.get("agentType")
        if kind == "agent" and agent_type and agent_type not in AGENT_TYPES:
            raise RegistrationError(400, f"agentType must be one of: {', '.join(AGENT_TYPES)}")
        holder = self._usernames.get(username)
        if holder is not None and (caller is None or holder != caller.id):
            raise RegistrationError(409, f"Username '{username}' is already taken")
        capabilities = body.get("capabilities")
        user = caller or User(id="usr_" + secrets.token_hex(6), username=username, display_name="")
        if caller is not None:
            self._usernames.pop(caller.username, None)
        is_new = caller is None or (caller.role == "human" and kind == "agent")
        user.username = username
        user.display_name = str(display)
        user.role = kind
        user.agent_type = (
            (agent_type if isinstance(agent_type, str) else "assistant")
            if kind == "agent"
            else None
        )
        user.capabilities = (
            [c for c in capabilities if isinstance(c, str)]
            if isinstance(capabilities, list)
            else []
        )
        endpoint, secret = body.get("endpoint"), body.get("webhookSecret")
        if isinstance(endpoint, str) and kind == "agent":
            user.endpoint = endpoint or None
        if isinstance(secret, str):
            user.webhook_secret = secret or None
        self._users[user.id] = user
        self._usernames[username] = user.id
        return user, is_new
