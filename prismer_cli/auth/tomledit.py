"""Replace one string value in a TOML file's text, keeping every other byte as it was.

No TOML writer: the file is edited as text, line by line, the way a person would. The key must
sit on a line of its own in its table (`key = "value"` or `'value'`, comments after it kept);
anything else (a dotted key, an inline table, a multi-line string) is not edited, and the
caller says it could not save. The result is parsed again and must differ from the original in
that one value only.
"""

from __future__ import annotations

import re
import sys
from typing import Any

_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<name>[^\]]*?)\s*\]\s*(?:#.*)?$")
_NAME_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")
_VALUE = re.compile(
    r"""(?P<head>\s*=\s*)(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')(?P<tail>\s*(?:#.*)?)$"""
)


class NotEditable(Exception):
    """The value is not where a line edit can replace it safely."""


def _table_name(raw: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    at = 0
    while at < len(raw):
        match = _NAME_PART.match(raw, at)
        if match is None or match.end() == at:
            return None
        part = match.group(1)
        parts.append(part[1:-1] if part[0] in "\"'" else part)
        at = match.end()
    return tuple(parts)


def _loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NotEditable(f"not valid TOML: {exc}") from None
    return data


def _get(data: dict[str, Any], table: tuple[str, ...], key: str) -> object:
    for name in table:
        inner = data.get(name)
        if not isinstance(inner, dict):
            return None
        data = inner
    return data.get(key)


def replace_value(text: str, table: tuple[str, ...], key: str, value: str) -> str:
    """`text` with `key` of `[table]` (() for the top level) set to the string `value`."""
    if not re.fullmatch(r"[A-Za-z0-9_.~+/=-]*", value):
        raise NotEditable("the new value has characters a plain string would need escaped")
    before = _loads(text)
    if not isinstance(_get(before, table, key), str):
        raise NotEditable(f"no string {key!r} in [{'.'.join(table)}]")
    lines = text.splitlines(keepends=True)
    current: tuple[str, ...] | None = ()
    name = re.escape(key)
    key_pattern = re.compile(rf"""^\s*(?:{name}|"{name}"|'{name}')""")
    for number, line in enumerate(lines):
        body = line.rstrip("\r\n")
        header = _HEADER.match(body)
        if header is not None:
            current = _table_name(header.group("name"))
            continue
        if current != table:
            continue
        found = key_pattern.match(body)
        if found is None:
            continue
        rest = _VALUE.match(body, found.end())
        if rest is None:
            continue
        quote = rest.group("value")[0]
        edited = body[: rest.start("value")] + f"{quote}{value}{quote}" + body[rest.end("value") :]
        lines[number] = edited + line[len(body) :]
        result = "".join(lines)
        after = _loads(result)
        if _get(after, table, key) != value or _without(after, table, key) != _without(
            before, table, key
        ):
            raise NotEditable("the edit would change more than the one value")
        return result
    raise NotEditable(f"{key!r} of [{'.'.join(table)}] is not on a line of its own")


def _without(data: dict[str, Any], table: tuple[str, ...], key: str) -> dict[str, Any]:
    """A copy of the parsed file with the one value blanked, to compare the rest."""
    copy = dict(data)
    inner = copy
    for name in table:
        inner[name] = dict(inner[name])
        inner = inner[name]
    inner[key] = None
    return copy
