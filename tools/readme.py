"""The README's text, for the man page: so that the two cannot say different things.

Passages of README.md between `<!-- man: NAME -->` and `<!-- /man -->` are taken as they stand
(`marked`), and the exit codes from its "Exit codes" table (`exit_codes`); docgen.py sets them in
roff. The Markdown they may use is small: paragraphs, `- ` lists (one level of nesting),
fenced code blocks, `code`, **bold**, [links](url) and `\\|` in tables. Anything else in a marked
passage is refused, so that the man page never shows raw Markdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_MARK = re.compile(r"^<!-- man: ([a-z-]+) -->$")
_END = "<!-- /man -->"
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*`])\*(\S[^*`]*?)\*(?![\w*])")
_ITEM = re.compile(r"^( *)- ")


@dataclass(frozen=True)
class Block:
    """A paragraph ("para"), a list item ("item", depth 0 or 1) or a code block ("code")."""

    kind: str
    text: str = ""
    depth: int = 0
    lines: tuple[str, ...] = ()


def text() -> str:
    return README.read_text(encoding="utf-8")


def plain(markdown: str) -> str:
    """Inline Markdown as docgen's prose: `code` stays (set in bold), **strong** becomes bold
    too, a link its text, `\\|` a bar."""
    out = _LINK.sub(r"\1", markdown).replace("\\|", "|")
    out = _STRONG.sub(lambda m: m.group(1) if "`" in m.group(1) else f"`{m.group(1)}`", out)
    out = _EMPHASIS.sub(r"\1", out)
    if "**" in out or "](" in out:
        raise ValueError(f"README: Markdown the man page cannot show: {markdown[:60]!r}")
    return out


def marked(source: str | None = None) -> dict[str, list[Block]]:
    """Every marked passage of the README, by name, as blocks."""
    lines = (source if source is not None else text()).splitlines()
    passages: dict[str, list[Block]] = {}
    i = 0
    while i < len(lines):
        mark = _MARK.match(lines[i].strip())
        i += 1
        if mark is None:
            continue
        start = i
        while i < len(lines) and lines[i].strip() != _END:
            i += 1
        if i == len(lines):
            raise ValueError(f"README: <!-- man: {mark.group(1)} --> is never closed")
        passages[mark.group(1)] = blocks(lines[start:i])
    return passages


def blocks(lines: list[str]) -> list[Block]:
    """Markdown lines as paragraphs, list items and code blocks."""
    found: list[Block] = []
    current: list[str] = []
    kind, depth = "", 0

    def close() -> None:
        nonlocal current, kind
        if current:
            found.append(Block(kind, plain(" ".join(current)), depth))
        current, kind = [], ""

    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        i += 1
        if stripped.startswith("```"):
            close()
            code: list[str] = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1
            found.append(Block("code", lines=tuple(code)))
        elif not stripped:
            close()
        elif (item := _ITEM.match(raw)) is not None:
            close()
            kind, depth = "item", 0 if len(item.group(1)) < 2 else 1
            current = [stripped[2:]]
        elif stripped.startswith(("#", "|", "<!--", "* ", "1. ")):
            raise ValueError(f"README: a marked passage cannot hold {stripped[:40]!r}")
        else:
            if not current:
                kind, depth = "para", 0
            current.append(stripped)
    close()
    return found


def exit_codes(source: str | None = None) -> list[tuple[int, str]]:
    """The rows of the README's "Exit codes" table: (code, meaning), in order."""
    section = (source if source is not None else text()).split("\n## Exit codes\n", 1)[1]
    rows = []
    for row in section.split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
        if len(cells) == 2 and cells[0].isdigit():
            rows.append((int(cells[0]), plain(cells[1])))
    return rows
