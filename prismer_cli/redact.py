"""Keep the token out of every line the program writes: URLs, errors, logs."""

from __future__ import annotations

import functools
import re


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Compiled on first use (~0.5 ms that a run which redacts nothing does not pay)."""
    token_in_url = re.compile(r"([?&](?:token|access_token)=)[^&#\s'\"]*", re.IGNORECASE)
    # user:password@ (or a lone user, which may be a token) in a URL: credentials, never shown
    url_credentials = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/?#@\s'\"]+@", re.IGNORECASE)
    bearer = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
    return token_in_url, url_credentials, bearer


def redact(text: str, *secrets: str | None) -> str:
    """Return text with token query values, Bearer credentials, the credentials of URLs
    (`http://***@host`) and each secret masked."""
    token_in_url, url_credentials, bearer = _patterns()
    text = token_in_url.sub(r"\1***", text)
    text = url_credentials.sub(r"\1***@", text)
    text = bearer.sub(r"\1***", text)
    for secret in secrets:
        if secret:  # the whole token only: a short one must not eat into ordinary words
            text = re.sub(rf"(?<![\w-])(?<!\w\.){re.escape(secret)}(?![\w-]|\.\w)", "***", text)
    return text


def mask(token: str | None) -> str:
    """A token shown to a person: enough to tell two apart, never enough to use."""
    if not token:
        return "(none)"
    if len(token) <= 8:
        return "***"
    return f"{token[:4]}…{token[-4:]} ({len(token)} chars)"
