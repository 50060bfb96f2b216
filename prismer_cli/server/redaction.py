"""Hiding token values in what the server prints and records (stderr, ``/_control/log``)."""

from __future__ import annotations

import re
from typing import Any

_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s#]*", re.IGNORECASE)
_TOKEN_IN_JSON = re.compile(r'("token"\s*:\s*")(?:[^"\\]|\\.)*', re.IGNORECASE)


def redact(text: str) -> str:
    """Hide token values: ``token=***`` in URLs, ``"token":"***`` in (broken) JSON text."""
    return _TOKEN_IN_JSON.sub(r"\1***", _TOKEN_IN_QUERY.sub(r"\1***", text))


def redact_frame(value: Any) -> Any:
    """A copy of a parsed frame with every ``token`` field replaced by ``***``."""
    if isinstance(value, dict):
        return {k: "***" if k == "token" else redact_frame(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_frame(v) for v in value]
    return value
