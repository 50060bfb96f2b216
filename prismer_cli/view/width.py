"""Lines cut to the terminal's width: cells counted as a terminal counts them (wide East Asian
characters take two), colours applied after the cut so that an escape is never cut in half."""

from __future__ import annotations

import os
import unicodedata

Segment = tuple[str, str | None]  # text and its SGR style (None: plain)
ELLIPSIS = "…"


def cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def cut(segments: list[Segment], width: int | None) -> list[Segment]:
    """The segments shortened to `width` cells, the last one kept ending in an ellipsis."""
    if width is None or width <= 0:
        return segments
    total = sum(cells(c) for text, _ in segments for c in text)
    if total <= width:
        return segments
    room = width - 1  # the ellipsis takes one cell
    kept: list[Segment] = []
    for text, style in segments:
        taken: list[str] = []
        for char in text:
            size = cells(char)
            if size > room:
                kept.append(("".join(taken) + ELLIPSIS, style))
                return kept
            room -= size
            taken.append(char)
        kept.append(("".join(taken), style))
    return kept  # pragma: no cover - total > width ends in the loop


def terminal_width(fd: int) -> int | None:
    """The width of the terminal on `fd`, or None when it is not a terminal (nothing is cut)."""
    try:
        if not os.isatty(fd):
            return None
        return os.get_terminal_size(fd).columns or None
    except OSError:
        return None
