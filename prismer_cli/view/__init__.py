"""How events and results are shown: NDJSON (the default), `--pretty` or `--format TEMPLATE`.

- pretty.py, results.py: what a human line says, for events and for send's results;
- template.py: `--format`;
- color.py, width.py, clock.py: colours by type family, the cut to the terminal's width, times;
- sink.py: the human views as Outputs, which the engines write through as they write NDJSON;
- choice.py: the view of a run, and the Output that goes with it.

`choice.choose` settles the view once, before anything connects: `--pretty`, `--format` and `--json`
exclude one another (exit 2); without any of them `PRISMER_RT_OUTPUT`, then the config file's
`output` key (its profile's first), say which; NDJSON otherwise, on a terminal too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prismer_cli.records import Frozen

if TYPE_CHECKING:
    from prismer_cli.view.template import Template

OUTPUTS = ("json", "pretty")  # the values of PRISMER_RT_OUTPUT and of the config key `output`


class ViewFlags(Frozen):
    """The output options as the command line gave them."""

    pretty: bool
    format: str | None
    json: bool
    color: str

    def __init__(
        self,
        pretty: bool = False,
        format: str | None = None,
        json: bool = False,
        color: str = "auto",
    ) -> None:
        self._init(locals())


class View(Frozen):
    mode: str  # json | pretty | format
    template: Template | None
    color: bool

    def __init__(
        self, mode: str = "json", template: Template | None = None, color: bool = False
    ) -> None:
        self._init(locals())
