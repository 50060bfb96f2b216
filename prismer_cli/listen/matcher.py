"""`listen --match PATH=VALUE` (docs/cli.md "listen"): a condition on one field of the envelope.

PATH is dotted into the envelope (`payload.taskId`; a number indexes a list); VALUE is compared
as JSON when it parses as JSON (`42`, `true`, `null`, `"42"`), else as a string. A field that is
absent never matches. Several --match options must all hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from prismer_cli.errors import UsageError

ABSENT = object()  # what field_at gives for a field that is not there


@dataclass(frozen=True)
class Match:
    path: tuple[str, ...]
    value: Any

    @classmethod
    def parse(cls, spec: str) -> Match:
        path, sep, text = spec.partition("=")
        segments = tuple(path.split("."))
        if not sep or not all(segments):
            raise UsageError(
                f"--match {spec!r}: expected PATH=VALUE with a dotted PATH, as in payload.taskId=t1"
            )
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        return cls(segments, value)

    def holds(self, envelope: dict[str, Any]) -> bool:
        node = field_at(envelope, self.path)
        return node is not ABSENT and _same(node, self.value)


def field_at(envelope: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The field at the dotted path (a number indexes a list), or ABSENT; `--format` reads
    fields this way too."""
    node: Any = envelope
    for segment in path:
        if isinstance(node, dict):
            node = node.get(segment, ABSENT)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return ABSENT
        if node is ABSENT:
            return ABSENT
    return node


def all_hold(matches: tuple[Match, ...], envelope: dict[str, Any]) -> bool:
    return all(m.holds(envelope) for m in matches)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, "1" is not 1; 1 and 1.0 are the same number."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        option = orjson.OPT_SORT_KEYS
        return type(a) is type(b) and orjson.dumps(a, option=option) == orjson.dumps(
            b, option=option
        )
    return type(a) is type(b) and a == b
