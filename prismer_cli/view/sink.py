"""The human views as Outputs: the engines write through them exactly as through NDJSON.

The listen and send engines call `line(bytes)` with a frame's own bytes (stored events: several
lines at once) and `record(obj)` with
a lifecycle or result record; NDJSON (prismer_cli/output.py) writes them as they are, with no
per-event work. These classes parse them and write what a renderer makes of them instead: the
pretty lines (coloured, and cut to the terminal's width when stdout is one) or a template's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson

from prismer_cli.output import Output
from prismer_cli.view.color import paint
from prismer_cli.view.pretty import Line
from prismer_cli.view.width import cut

Render = Callable[[dict[str, Any], float], list[Line]]


def parse(data: bytes) -> dict[str, Any]:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        frame = None
    return frame if isinstance(frame, dict) else {"type": "?", "payload": {}}


class HumanOutput(Output):
    """Each envelope or record as the lines `render` makes of it."""

    def __init__(
        self,
        render: Render,
        stream: BinaryIO | None = None,
        *,
        color: bool = False,
        width: Callable[[], int | None] = lambda: None,
    ) -> None:
        super().__init__(stream)
        self._render = render
        self._color = color
        self._width = width

    def line(self, data: bytes) -> None:
        received = time.time()
        for one in data.split(b"\n"):  # stored events come a page at a time, one per line
            self.show(self._render(parse(one), received))

    def record(self, obj: Any) -> None:
        self.show(self._render(obj, time.time()))

    def records(self, objs: list[Any]) -> None:
        for obj in objs:
            self.record(obj)

    def server_error(self, frame: dict[str, Any]) -> bool:
        self.record(frame)
        self.flush()
        return True

    def text(self, lines: list[Line]) -> list[str]:
        """The finished lines, cut and coloured."""
        width = self._width()
        color = self._color
        return ["".join(paint(t, s) if color else t for t, s in cut(line, width)) for line in lines]

    def show(self, lines: list[Line]) -> None:
        for text in self.text(lines):
            Output.line(self, text.encode("utf-8", "replace"))


class TemplateOutput(Output):
    """`--format`: each envelope (and, with --meta, each lifecycle record) through a template."""

    def __init__(
        self, render: Callable[[dict[str, Any], float], str], stream: BinaryIO | None = None
    ):
        super().__init__(stream)
        self._render = render

    def line(self, data: bytes) -> None:
        received = time.time()
        for one in data.split(b"\n"):  # stored events come a page at a time, one per line
            Output.line(self, self._render(parse(one), received).encode("utf-8", "replace"))

    def record(self, obj: Any) -> None:
        Output.line(self, self._render(obj, time.time()).encode("utf-8", "replace"))

    def records(self, objs: list[Any]) -> None:
        for obj in objs:
            self.record(obj)
