"""`--color auto|always|never`, and one colour per family of event types.

auto colours only when stdout is a terminal, `NO_COLOR` is unset (https://no-color.org) and
`TERM` is not `dumb`. The families (messages, tasks, presence, conversations, lifecycle,
errors) keep their colour everywhere a type is shown: listen, send, chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from prismer_cli.errors import UsageError

CHOICES = ("auto", "always", "never")

RESET = "\x1b[0m"
DIM = "2"
BOLD = "1"
# SGR parameters by family; a type outside every family is not coloured.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("prismer-rt.", "35"),  # lifecycle: magenta
    ("error", "1;31"),  # errors: bold red
    ("message.", "32"),  # messages: green
    ("task.", "33"),  # tasks: yellow
    ("presence.", "36"),  # presence and typing: cyan
    ("typing.", "36"),
    ("conversation.", "34"),  # conversations and their members: blue
    ("participant.", "34"),
)
# result lines of send, mark-read and chat
OUTCOMES = {"confirmed": "32", "sent": "32", "read": "32", "uncertain": "33", "failed": "1;31"}


def family_style(kind: str) -> str | None:
    """The SGR parameters of a type's family, or None."""
    for prefix, style in FAMILIES:
        if kind.startswith(prefix) or kind == prefix.rstrip("."):
            return style
    return None


def wanted(choice: str, stream: IO[Any], env: Mapping[str, str]) -> bool:
    """Whether to colour what goes to `stream`."""
    if choice not in CHOICES:
        raise UsageError(f"--color takes auto, always or never, not {choice!r}")
    if choice != "auto":
        return choice == "always"
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, style: str | None) -> str:
    return f"\x1b[{style}m{text}{RESET}" if style and text else text
