"""`--format TEMPLATE`: one line per event, `{PATH}` replaced by the field at PATH.

PATH is dotted into the envelope as `--match` has it (`{type}`, `{payload.content}`, `{seq}`; a
number indexes a list); `{received}` is the local receive time in ISO 8601 with milliseconds
and offset, unless the envelope has a field of that name. A missing field is empty, an object
or array compact JSON, a string as is but with newline, carriage return and tab written as
`\\n`, `\\r`, `\\t`, so that one event is always one line. `{{` and `}}` are literal braces; an
unclosed `{` is a usage error (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from prismer_cli.errors import UsageError
from prismer_cli.listen.matcher import ABSENT, field_at
from prismer_cli.view.clock import iso

_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True)
class Template:
    parts: tuple[str | tuple[str, ...], ...]  # literal text, or a path

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | tuple[str, ...]] = []
        literal: list[str] = []
        at = 0
        while at < len(text):
            char = text[at]
            if char == "{" and text.startswith("{{", at):
                literal.append("{")
                at += 2
            elif char == "}" and text.startswith("}}", at):
                literal.append("}")
                at += 2
            elif char == "{":
                end = text.find("}", at + 1)
                inner = text[at + 1 : end] if end != -1 else ""
                if end == -1 or "{" in inner:
                    raise UsageError(
                        f"--format: the {{ at character {at + 1} is not closed "
                        "(write {{ for a literal brace)"
                    )
                path = tuple(inner.strip().split("."))
                if not all(path):
                    raise UsageError(
                        f"--format: {{{inner}}} is not a field path like payload.content"
                    )
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(path)
                at = end + 1
            else:
                literal.append(char)
                at += 1
        if literal:
            parts.append("".join(literal))
        return cls(tuple(parts))

    def render(self, frame: dict[str, Any], received: float) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = field_at(frame, part)
            if value is ABSENT and part == ("received",):
                value = iso(received)
            out.append(_show(value))
        return "".join(out)


def _show(value: Any) -> str:
    if value is ABSENT:
        return ""
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return orjson.dumps(value).decode()
