"""``POST /api/im/token/refresh``, as ``createTokenRouter`` in the real ``api/register.ts``.

With ``Authorization: Bearer <JWT>`` it answers 200
``{"ok": true, "data": {"token": <new JWT>, "expiresIn": <ttl, e.g. "7d">}}``, for a token
that has already expired too: a token that does not verify is only *decoded*, its signature
unchecked, exactly as the real server does. Errors:

- 401 ``Missing Authorization header`` without ``Bearer``;
- 401 ``Invalid token`` for anything that is not a JWT (``--token`` tokens are opaque, so
  they cannot be refreshed);
- 404 ``User not found`` when the ``sub`` is no user of this server. A token this server
  signed always names a user (the stand-in re-creates one lost to a restart from the claims,
  as the real database would still hold it); a crafted token's unknown ``sub`` does not.
  Simplified: a JWT without a string ``sub`` is 404 here, a 500 on the real server.

The new token has ``iat`` in whole seconds, so two refreshes within one second may answer
the same string, as on the real server.
"""

from __future__ import annotations

from aiohttp import web

from prismer_cli.server import tokens
from prismer_cli.server.context import ServerContext
from prismer_cli.server.responses import json_answer, json_error


class TokenApi:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/im/token/refresh", self.refresh)]

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return json_error("Missing Authorization header", 401)
        token = header[len("Bearer ") :]
        claims = tokens.decode(token)
        if claims is None:
            return json_error("Invalid token", 401)
        store = self._ctx.store
        sub = claims.get("sub")
        user = store.user(sub) if isinstance(sub, str) else None
        if user is None and tokens.signed_by_us(token):
            user = store.user_from_claims(claims)
        if user is None:
            return json_error("User not found", 404)
        data = {"token": store.issue_token(user), "expiresIn": tokens.expires_in(store.token_ttl)}
        return json_answer({"ok": True, "data": data})
