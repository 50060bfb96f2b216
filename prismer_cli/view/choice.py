"""The view of one run (`choose`), and the Output that writes it (`event_output`,
`result_output`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO

from prismer_cli.errors import UsageError
from prismer_cli.output import Output
from prismer_cli.view import OUTPUTS, View, ViewFlags

if TYPE_CHECKING:
    from prismer_cli.config import CommandLine
    from prismer_cli.view.pretty import Names


def choose(flags: ViewFlags, configured: object, env: Mapping[str, str]) -> View:
    """The view for this run; `configured` is the config file's `output` (None if unset)."""
    from prismer_cli.view.color import wanted

    given = [
        name
        for name, on in (
            ("--pretty", flags.pretty),
            ("--format", flags.format is not None),
            ("--json", flags.json),
        )
        if on
    ]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other: give one")
    color = wanted(flags.color, sys.stdout, env)
    if flags.format is not None:
        from prismer_cli.view.template import Template  # and listen/matcher.py: --format only

        return View("format", Template.parse(flags.format))
    if flags.pretty:
        return View("pretty", color=color)
    if flags.json:
        return View()
    mode, _ = default_output(configured, env)
    return View(mode, color=color) if mode != "json" else View()


def default_output(
    configured: object, env: Mapping[str, str], where: str = "the config file"
) -> tuple[str, str]:
    """The view without --pretty, --format or --json, and where that came from:
    PRISMER_RT_OUTPUT, then the config file's `output`, then json; UsageError for another
    value."""
    mode, source = env.get("PRISMER_RT_OUTPUT"), "env PRISMER_RT_OUTPUT"
    if not mode:
        mode, source = configured if isinstance(configured, str) else None, where
    if mode is None:
        return "json", "default"
    if mode not in OUTPUTS:
        raise UsageError(f"output must be json or pretty, not {mode!r} ({source})")
    return mode, source


def choose_for(flags: ViewFlags, cli: CommandLine) -> View:
    """`choose` with this process's environment and the selected profile's `output`."""
    import os

    from prismer_cli.config import profile_value

    return choose(flags, profile_value(cli, os.environ, "output"), os.environ)


def _width() -> int | None:
    from prismer_cli.view.width import terminal_width

    try:
        return terminal_width(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return None


def event_output(view: View, names: Names | None = None, stream: BinaryIO | None = None) -> Output:
    """Where listen, subscribe and chat write events. `names`: a user id to a display name."""
    if view.mode == "json":
        return Output(stream)
    if view.mode == "format":
        from prismer_cli.view.sink import TemplateOutput

        assert view.template is not None
        return TemplateOutput(view.template.render, stream)
    from prismer_cli.view.pretty import PrettyEvents
    from prismer_cli.view.sink import HumanOutput

    render = PrettyEvents(names) if names is not None else PrettyEvents()
    return HumanOutput(render, stream, color=view.color, width=_width)


def result_output(view: View, stream: BinaryIO | None = None) -> Output:
    """Where send and mark-read write their result records."""
    if view.mode != "pretty":
        return Output(stream)
    from prismer_cli.view.results import result_line
    from prismer_cli.view.sink import HumanOutput

    return HumanOutput(result_line, stream, color=view.color, width=_width)
