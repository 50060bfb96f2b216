"""How values are written on the wire: compact JSON, ISO-8601 times, millisecond timestamps."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any


def dumps(value: Any) -> str:
    """JSON as the real server writes it: compact, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, like ``2026-11-27T17:19:48.736Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_ms() -> int:
    """Wall-clock milliseconds, the ``timestamp`` of server-dialect frames."""
    return int(time.time() * 1000)
