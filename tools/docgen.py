"""Shell completions and the man page, generated from the Typer app: never edited by hand.

    python -m tools.docgen           rewrite completions/ and man/ from the app (make docs)
    python -m tools.docgen --check   exit 1, listing the files that are stale

The completion scripts are Typer's own: the text `prismer-rt --show-completion` prints and
`prismer-rt --install-completion` installs. The man page walks the click command tree of
`typer.main.get_command(app)` for commands, options, metavars, defaults and help, and takes its
prose from docprose.py and, where the README says it (cursor files, delivery, tokens, signals,
the service, the exit statuses), from the README's own text (readme.py), so that the two agree.
In help texts, a paragraph "Example: CMD" or "Examples: CMD ; CMD"
becomes a code block with one command a line. A build-time tool: the installed package does not
contain it, and the CLI never imports it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import typer
import typer.main

# The function behind --show-completion and --install-completion, from Typer's public completion
# module (which imports it from typer._completion_shared without re-exporting it by name).
from typer.completion import get_completion_script  # type: ignore[attr-defined]
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from prismer_cli import __version__
from prismer_cli.cli.app import app as APP
from prismer_cli.errors import ExitStatus
from tools import docprose, readme

PROG = "prismer-rt"
COMPLETE_VAR = "_PRISMER_RT_COMPLETE"  # what Typer derives from PROG: _{PROG}_COMPLETE
COMPLETIONS = {
    "bash": "completions/prismer-rt",  # bash-completion looks files up by command name
    "zsh": "completions/_prismer-rt",
    "fish": "completions/prismer-rt.fish",
}
MAN_PAGE = "man/prismer-rt.1"
HELP_MODULE = "prismer_cli/cli/helptext.py"  # `prismer-rt --help`, answered without Typer
HELP_WIDTH = 78  # click's width on a terminal of 80 columns or more: min(columns, 80) - 2
ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -m tools.docgen"

Param = TyperOption | TyperArgument
Command = TyperCommand | TyperGroup
Key = tuple[tuple[str, ...], str | None]  # an option's names and help: the same option

# -- roff -------------------------------------------------------------------------------------
_SPECIAL = {
    "\\": r"\e",
    "-": r"\-",
    "'": r"\(aq",
    "`": r"\(ga",
    "~": r"\(ti",
    "^": r"\(ha",
    '"': r"\(dq",
}
_WORD = re.compile(r"[A-Z][A-Z0-9_]*")
_FONT = re.compile(r"\\f([BIRP])")
WIDTH = 78  # source lines, as mandoc's style check wants them (at most 80 bytes)


def escape(text: str) -> str:
    """Plain text made safe inside a roff line: no character is read as roff syntax."""
    return "".join(_SPECIAL.get(c, c if c.isascii() else f"\\[u{ord(c):04X}]") for c in text)


def bold(text: str) -> str:
    return rf"\fB{escape(text)}\fR"


def italic(text: str) -> str:
    return rf"\fI{escape(text)}\fR"


def inline(text: str) -> str:
    """Prose to roff: `backticks` become bold, everything else is escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced backticks in: {text}")
    return "".join(bold(part) if i % 2 else escape(part) for i, part in enumerate(parts))


def placeholder(text: str) -> str:
    """A metavar or usage piece: its upper-case words in italics, the punctuation roman."""
    out, pos = [], 0
    for match in _WORD.finditer(text):
        out += [escape(text[pos : match.start()]), italic(match.group())]
        pos = match.end()
    return "".join([*out, escape(text[pos:])])


def line(roff: str) -> str:
    """A text line that roff cannot take for a request (leading `.` or `'`)."""
    return rf"\&{roff}" if roff.startswith((".", "'")) else roff


def wrap(roff: str, width: int = WIDTH) -> list[str]:
    """Filled text split at spaces into source lines of at most `width`; a bold or italic
    run stays on one line, unless it is too long for one: then it is ended at the line's end
    and started again on the next (each line must end in the roman font)."""
    atoms: list[tuple[str, str]] = []  # (text, the font in force after it)
    font = "R"
    if not roff.strip():
        return []
    for word in roff.split(" "):
        if font != "R" and len(atoms[-1][0]) + 1 + len(word) <= width - 3:
            atoms[-1] = (atoms[-1][0] + " " + word, font)
        else:
            atoms.append((word, font))
        for change in _FONT.findall(word):
            font = "R" if change in "RP" else change
        atoms[-1] = (atoms[-1][0], font)
    lines = [atoms[0][0]]
    open_font = atoms[0][1]
    for text, after in atoms[1:]:
        if len(lines[-1]) + 1 + len(text) + (3 if open_font != "R" else 0) > width:
            if open_font != "R":  # end the run here, start it again on the next line
                lines[-1] += r"\fR"
                text = rf"\f{open_font}" + text
            lines.append(text)
        else:
            lines[-1] += " " + text
        open_font = after
    return [line(text) for text in lines]


def paragraph(roff: str) -> list[str]:
    return [".PP", *wrap(roff)]


def item(term: str, body: str) -> list[str]:
    return [".TP", line(term), *(wrap(body) or [r"\&"])]


def bullet(roff: str, depth: int = 0) -> list[str]:
    """A list item: a bullet, indented one step more when nested."""
    lines = [r".IP \(bu 2", *wrap(roff)]
    return [".RS 2", *lines, ".RE"] if depth else lines


def code(lines: Sequence[str]) -> list[str]:
    """Literal lines (commands, files), indented and not filled."""
    return [
        ".RS 4",
        ".nf",
        *(line(escape(text)) if text else r"\&" for text in lines),
        ".fi",
        ".RE",
    ]


# -- help text --------------------------------------------------------------------------------
_EXAMPLE = re.compile(r"(Examples?):\s*(.*)")


def help_blocks(text: str | None) -> list[str]:
    """Click help or epilog text to roff: paragraphs, and Example lines as code."""
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", (text or "").strip()):
        if para.strip():
            blocks += _help_paragraph(para)
    return blocks


def _help_paragraph(para: str) -> list[str]:
    if para.startswith("\b"):  # click's mark for a paragraph that keeps its lines
        lines = [text.strip() for text in para[1:].strip("\n").splitlines()]
        if not lines:
            return []
        head, rest = lines[0], lines[1:]
    else:
        head, rest = " ".join(para.split()), []
    example = _EXAMPLE.fullmatch(head)
    if example is not None:
        commands = [c for c in example.group(2).split(" ; ") if c]
        return [*paragraph(escape(example.group(1) + ":")), *code(commands + rest)]
    if rest:
        return [".PP", ".nf", *(line(escape(text)) for text in [head, *rest]), ".fi"]
    return paragraph(escape(head))


# -- the command tree -------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One command of the tree, its path below the root, and a context to format it with."""

    path: tuple[str, ...]
    command: Command
    ctx: typer.Context

    @property
    def name(self) -> str:
        return " ".join((PROG, *self.path))

    def params(self) -> list[Param]:
        """Its visible arguments and options, help excluded, in declaration order."""
        found = [p for p in self.command.params if isinstance(p, (TyperOption, TyperArgument))]
        return [p for p in found if not p.hidden]

    def help_option(self) -> TyperOption | None:
        option = self.command.get_help_option(self.ctx)
        return option if isinstance(option, TyperOption) else None


def _node(command: object, path: tuple[str, ...], parent: typer.Context | None) -> Node:
    if not isinstance(command, (TyperCommand, TyperGroup)):
        raise TypeError(f"not a Typer command: {command!r}")
    ctx = typer.Context(
        command,
        parent=parent,
        info_name=path[-1] if path else PROG,
        resilient_parsing=True,
        **command.context_settings,
    )
    return Node(path, command, ctx)


def walk(app: typer.Typer) -> list[Node]:
    """Every visible command of the app, depth first, the root first."""
    return list(_walk(_node(typer.main.get_command(app), (), None)))


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node.command, TyperGroup):
        for name, command in node.command.commands.items():
            if not command.hidden:
                yield from _walk(_node(command, (*node.path, name), node.ctx))


def _key(param: Param) -> Key:
    return tuple(param.opts), param.help


def shared_keys(nodes: Sequence[Node]) -> set[Key]:
    """The root's options that subcommands accept too: the connection options."""
    below = {_key(p) for node in nodes[1:] for p in node.params()}
    return {_key(p) for p in nodes[0].params() if _key(p) in below}


def _prefix(opt: str) -> int:
    return len(opt) - len(opt.lstrip("-/+"))


def option_names(param: TyperOption, sep: str = ", ") -> str:
    """-v, --verbose: the short forms first, as click's help shows them."""
    groups = [param.opts, param.secondary_opts]
    return " / ".join(
        sep.join(bold(opt) for opt in sorted(opts, key=_prefix)) for opts in groups if opts
    )


def term(param: Param, ctx: typer.Context) -> str:
    """The tag of a parameter's entry: its names and metavar."""
    if isinstance(param, TyperArgument):
        return placeholder(param.make_metavar(ctx))
    if param.is_flag or param.count:
        return option_names(param)
    return f"{option_names(param)} {placeholder(param.make_metavar(ctx))}"


def usage(node: Node) -> str:
    """`prismer-rt send [OPTIONS] [CONVERSATION_ID] ...`, as the command's --help begins."""
    pieces = node.command.collect_usage_pieces(node.ctx)
    return " ".join([bold(node.name), *map(placeholder, pieces)])


def describe(param: Param, ctx: typer.Context) -> str:
    """Its help as `--help` shows it, with the default, range and required marks."""
    record = param.get_help_record(ctx)
    return escape(" ".join(record[1].split())) if record else ""


def param_items(params: Sequence[Param], ctx: typer.Context) -> list[str]:
    lines: list[str] = []
    for param in params:
        lines += item(term(param, ctx), describe(param, ctx))
    return lines


# -- the man page ---------------------------------------------------------------------------
def man_page(app: typer.Typer) -> str:
    """The whole man page, in roff, from the app's command tree and docprose."""
    nodes = walk(app)
    shared = shared_keys(nodes)
    root = nodes[0]
    sections = [
        _header(),
        _name(),
        _synopsis(nodes),
        _description(root),
        _options(root, shared),
        _commands(nodes[1:], shared),
        _connection(root, shared),
        *(_from_readme(title, names) for title, names in README_SECTIONS),
        _environment(),
        _files(),
        _exit_status(),
        _examples(),
        _see_also(),
    ]
    lines = [text for section in sections for text in section]
    return "\n".join(_tidy(lines)) + "\n"


def _tidy(lines: list[str]) -> list[str]:
    """Drop the paragraph macros that a heading already implies."""
    return [
        text
        for i, text in enumerate(lines)
        if not (text == ".PP" and i and lines[i - 1].startswith((".SH", ".SS")))
    ]


def _header() -> list[str]:
    date = docprose.RELEASE_DATES.get(__version__)
    if date is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise ValueError(f"add the release date of {__version__} to docprose.RELEASE_DATES")
    return [
        rf".\" Generated from the app and tools/docprose.py by: {REGENERATE}",
        f'.TH {escape(PROG.upper())} 1 {date} "{escape(PROG)} {escape(__version__)}" '
        '"User Commands"',
        ".nh",  # no hyphenation: option and variable names must stay whole
    ]


def _name() -> list[str]:
    return [".SH NAME", rf"{escape(PROG)} \- {escape(docprose.SUMMARY)}"]


def _synopsis(nodes: Sequence[Node]) -> list[str]:
    # A group's own usage line adds nothing to its commands' lines.
    usages = [usage(n) for n in nodes if not (n.path and isinstance(n.command, TyperGroup))]
    return [".SH SYNOPSIS", ".nf", *usages, ".fi"]


def _description(root: Node) -> list[str]:
    lines = [".SH DESCRIPTION", *help_blocks(root.command.help)]
    for text in docprose.DESCRIPTION:
        lines += paragraph(inline(text))
    return lines


def _options(root: Node, shared: set[Key]) -> list[str]:
    own = [p for p in root.params() if _key(p) not in shared]
    help_option = root.help_option()
    lines = [".SH OPTIONS", *param_items(own, root.ctx)]
    if help_option is not None:
        lines += item(term(help_option, root.ctx), describe(help_option, root.ctx))
        lines += paragraph(escape("Every command accepts ") + option_names(help_option) + ".")
    return [*lines, *paragraph(inline(docprose.COMPLETION_NOTE))]


def _commands(nodes: Sequence[Node], shared: set[Key]) -> list[str]:
    lines = [".SH COMMANDS"]
    for node in nodes:
        lines += _command(node, shared)
    return lines


def _command(node: Node, shared: set[Key]) -> list[str]:
    own = [p for p in node.params() if _key(p) not in shared]
    connection = [p for p in node.params() if _key(p) in shared]
    lines = [f'.SS "{escape(" ".join(node.path))}"']
    lines += paragraph(usage(node))
    lines += help_blocks(node.command.help)
    lines += param_items(own, node.ctx)
    if connection:
        names = ", ".join(option_names(p, "/") for p in connection if isinstance(p, TyperOption))
        lines += paragraph(f"Connection options: {names} (see {bold('CONNECTION OPTIONS')}).")
    return [*lines, *help_blocks(node.command.epilog)]


def _connection(root: Node, shared: set[Key]) -> list[str]:
    lines = [".SH CONNECTION OPTIONS"]
    for text in docprose.CONNECTION:
        lines += paragraph(inline(text))
    return [*lines, *param_items([p for p in root.params() if _key(p) in shared], root.ctx)]


# Sections of the man page made of the README's marked passages (readme.py), in this order.
README_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CURSOR FILES", ("cursor-files",)),
    ("DELIVERY", ("delivery", "invalid-lines")),
    ("TOKENS", ("tokens",)),
    ("SIGNALS", ("signals",)),
    ("RUNNING AS A SERVICE", ("service",)),
)


def _from_readme(title: str, names: Sequence[str]) -> list[str]:
    passages = readme.marked()
    lines = [f".SH {title}"]
    for name in names:
        if name not in passages:
            raise ValueError(f"README.md has no passage marked <!-- man: {name} -->")
        lines += _blocks(passages[name])
    return lines


def _blocks(blocks: Sequence[readme.Block]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if block.kind == "code":
            lines += code(block.lines)
        elif block.kind == "item":
            lines += bullet(inline(block.text), block.depth)
        else:
            lines += paragraph(inline(block.text))
    return lines


def _environment() -> list[str]:
    lines = [".SH ENVIRONMENT"]
    for name, text in docprose.ENVIRONMENT:
        lines += item(bold(name), inline(text))
    return [*lines, *paragraph(inline(docprose.ENVIRONMENT_NOTE))]


def _files() -> list[str]:
    lines = [".SH FILES"]
    for path, text in docprose.FILES:
        lines += item(bold(path), inline(text))
    intro, example = docprose.CONFIG_EXAMPLE
    return [*lines, *paragraph(inline(intro)), *code(example)]


def _exit_status() -> list[str]:
    """The README's "Exit codes" table, which must list every ExitStatus, in order."""
    rows = readme.exit_codes()
    codes = [code for code, _ in rows]
    if codes != [int(status) for status in ExitStatus]:
        expected = [int(status) for status in ExitStatus]
        raise ValueError(f"README's exit codes {codes} are not errors.ExitStatus {expected}")
    lines = [".SH EXIT STATUS"]
    for code, meaning in rows:
        lines += item(bold(str(code)), inline(meaning))
    return [*lines, *_blocks(readme.marked()["exit-note"])]


def _examples() -> list[str]:
    lines = [".SH EXAMPLES"]
    for text, commands in docprose.EXAMPLES:
        lines += [*paragraph(inline(text)), *code(commands)]
    return lines


def _see_also() -> list[str]:
    pages = ", ".join(f"{bold(name)}({section})" for name, section in docprose.SEE_ALSO)
    docs = escape("The Prismer documentation, Real-Time Communication: ")
    return [".SH SEE ALSO", *paragraph(pages), *paragraph(docs + escape(docprose.DOCS_URL))]


# -- checking roff without groff --------------------------------------------------------------
MACROS = frozenset({"TH", "nh", "SH", "SS", "PP", "TP", "IP", "RS", "RE", "nf", "fi"})
_ESCAPE = re.compile(r"\\(?:[e&-]|\(..|\[u[0-9A-F]{4,6}\]|f[BIRP])")


def lint_roff(source: str) -> list[str]:
    """Problems in roff source that this generator could make; none means it is clean."""
    if not source.endswith("\n"):
        return ["no newline at the end"]
    problems: list[str] = []
    filling, previous = True, ""
    for number, text in enumerate(source[:-1].split("\n"), start=1):
        problems += [f"line {number}: {p}" for p in _lint_line(text, previous, filling)]
        filling = {".nf": False, ".fi": True}.get(text, filling)
        previous = text
    return problems


def _lint_line(text: str, previous: str, filling: bool) -> list[str]:
    if text.startswith('.\\"'):
        return []
    if not text.strip() or text != text.rstrip():
        return ["blank line or trailing white space"]
    if text.startswith("'"):
        return ["text starting with ' is read as a request"]
    if text.startswith("."):
        macro = text[1:].split(" ", 1)[0]
        if macro not in MACROS:
            return [f"unknown macro or unescaped leading dot: {text[:40]!r}"]
        if macro == "PP" and previous.startswith((".SH", ".SS")):
            return ["paragraph macro right after a heading"]
    elif filling and text.startswith(" "):
        return ["leading space in filled text breaks the line"]
    elif filling and len(text.encode()) > WIDTH + 2 and " " in text:
        return ["filled text line longer than 80 bytes"]
    return _lint_escapes(text)


def _lint_escapes(text: str) -> list[str]:
    problems: list[str] = []
    font, pos = "R", 0
    while (pos := text.find("\\", pos)) >= 0:
        match = _ESCAPE.match(text, pos)
        if match is None:
            return [*problems, f"unknown escape at column {pos + 1}: {text[pos : pos + 6]!r}"]
        sequence = match.group()
        if sequence in (r"\fB", r"\fI"):
            problems += ["font change inside bold or italic"] if font != "R" else []
            font = sequence[-1]
        elif sequence in (r"\fR", r"\fP"):
            problems += ["font reset with no font to end"] if font == "R" else []
            font = "R"
        pos = match.end()
    return [*problems, "bold or italic not ended on its line"] if font != "R" else problems


# -- completions and files ------------------------------------------------------------------
def completion_script(shell: str) -> str:
    """The script `prismer-rt --show-completion` prints for `shell`: Typer's own."""
    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def top_help(app: typer.Typer) -> str:
    """What `prismer-rt --help` prints on a terminal of 80 columns or more (or none)."""
    group = typer.main.get_command(app)
    with group.make_context(PROG, [], resilient_parsing=True, terminal_width=HELP_WIDTH) as ctx:
        return group.get_help(ctx) + "\n"


def _quoted(text: str) -> str:
    """A Python literal of `text` as ruff format writes it: double quotes unless the text holds
    some and no single quote."""
    assert text.rstrip("\n").isprintable(), text
    if '"' in text and "'" not in text:
        return repr(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def help_module(app: typer.Typer) -> str:
    """prismer_cli/cli/helptext.py: the top-level help as a Python string, a line each."""
    lines = "".join(f"    {_quoted(line)}\n" for line in top_help(app).splitlines(keepends=True))
    return (
        '"""`prismer-rt --help` as the CLI framework prints it on a terminal of 80 columns or '
        "more:\ngenerated by tools/docgen.py from the app, never edited by hand. "
        "prismer_cli/cli/__init__.py\nanswers --help with it before the framework is "
        'imported, as it answers --version."""\n\n'
        f"HELP = (\n{lines})\n"
    )


def generate() -> dict[str, str]:
    """Every generated file: its path below the repository, and its text."""
    files = {path: completion_script(shell) for shell, path in COMPLETIONS.items()}
    files[HELP_MODULE] = help_module(APP)
    page = man_page(APP)
    problems = lint_roff(page)
    if problems:
        raise ValueError("the man page is not clean roff:\n" + "\n".join(problems))
    files[MAN_PAGE] = page
    return files


def stale(root: Path, files: dict[str, str]) -> list[str]:
    """The files missing below `root` or different from what the app makes now."""
    return [path for path, text in files.items() if _read(root / path) != text]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write(root: Path, files: dict[str, str]) -> list[str]:
    """Write the stale files; return their paths."""
    changed = stale(root, files)
    for path in changed:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(files[path], encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE, description="Generate the shell completions and the man page."
    )
    parser.add_argument("--check", action="store_true", help="list stale files, exit 1 if any")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        outdated = stale(args.root, files)
        for path in outdated:
            print(f"stale: {path} (run: {REGENERATE})", file=sys.stderr)
        return 1 if outdated else 0
    for path in write(args.root, files):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
