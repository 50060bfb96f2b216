"""Receive times as people read them: local `HH:MM:SS.mmm`, and ISO 8601 for `{received}`."""

from __future__ import annotations

import time
from datetime import datetime


def hms(at: float) -> str:
    """Local time of day with milliseconds: 14:03:07.123."""
    local = time.localtime(at)
    return f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}.{int(at * 1000) % 1000:03d}"


def iso(at: float) -> str:
    """Local time, ISO 8601 with milliseconds and offset: 2026-12-04T14:03:07.123+01:00."""
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="milliseconds")
