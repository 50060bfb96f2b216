"""The pure parts of the human views: templates, the width cut, result outcomes."""

from __future__ import annotations

import pytest

from prismer_cli.errors import UsageError
from prismer_cli.view.pretty import PrettyEvents, printable
from prismer_cli.view.results import outcome
from prismer_cli.view.template import Template
from prismer_cli.view.width import cut


def test_template_paths_braces_and_escapes() -> None:
    """Dotted paths as --match has them, list indexes, {{ }}, escapes, missing fields empty."""
    frame = {"type": "t", "payload": {"a": [{"b": "x\ty"}], "n": None, "f": 1.5}, "seq": 7}
    text = Template.parse("{{{type}}}|{payload.a.0.b}|{payload.a.5}|{payload.n}|{seq}|}}").render(
        frame, 0.0
    )
    assert text == "{t}|x\\ty||null|7|}"


@pytest.mark.parametrize("bad", ["{type", "x {", "{a{b}", "{}", "{a..b}"])
def test_template_refuses_unclosed_or_empty_fields(bad: str) -> None:
    with pytest.raises(UsageError):
        Template.parse(bad)


def test_cut_counts_cells_and_keeps_styles() -> None:
    """Wide characters take two cells; the last kept segment ends in an ellipsis."""
    segments = [("12:00", "2"), (" ", None), ("日本語テキスト", None)]
    assert cut(segments, 10) == [("12:00", "2"), (" ", None), ("日…", None)]
    assert cut(segments, 100) == segments


def test_outcomes() -> None:
    assert outcome({"ok": True, "message": {"id": "m"}}) == "confirmed"
    assert outcome({"ok": True, "sent": True}) == "sent"
    assert (
        outcome({"ok": False, "error": "x; it may or may not have been delivered"}) == "uncertain"
    )
    assert outcome({"ok": False, "error": "HTTP 404"}) == "failed"


def test_server_text_never_reaches_the_terminal_raw() -> None:
    """Escape sequences in content are shown escaped, so a message cannot drive the terminal."""
    assert printable("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    lines = PrettyEvents()({"type": "message.new", "payload": {"content": "\x1b]0;x\x07"}}, 0.0)
    assert "\x1b" not in "".join(text for line in lines for text, _ in line)


def test_further_lines_align_under_a_wide_name() -> None:
    """The indent counts cells: a name in wide characters still lines the content up."""
    frame = {"type": "message.new", "payload": {"senderName": "太郎", "content": "a\nb"}}
    first, second = ("".join(t for t, _ in line) for line in PrettyEvents()(frame, 0.0))
    assert first.endswith("太郎: a") and len(second) == len(first) + 2  # 太郎: four cells
