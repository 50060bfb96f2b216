"""The generated completions and man page: current, complete, clean roff, and working."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prismer_cli import __version__
from prismer_cli.cli import main as CLI_MAIN
from prismer_cli.cli.app import app
from prismer_cli.errors import ExitStatus
from tools import docgen, docprose, readme

REPO = Path(__file__).resolve().parent.parent
GENERATED = docgen.generate()
PAGE = GENERATED[docgen.MAN_PAGE]
NODES = docgen.walk(app)
NO_DETECTION = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"  # Typer: take the shell as given
INSTALLED = {
    "bash": ".bash_completions/prismer-rt.sh",
    "zsh": ".zfunc/_prismer-rt",
    "fish": ".config/fish/completions/prismer-rt.fish",
}
AUTO_REPLY = (
    "prismer-rt listen --type message.new --ignore-self | jq -c '{conversationId: "
    '.payload.conversationId, content: "Message received!"}\' | prismer-rt send'
)
HEAVY = {"websocket", "requests", "aiohttp", "rich"}
ENVIRONMENT = (
    *("PRISMER_URL", "PRISMER_BASE_URL", "PRISMER_TOKEN", "AGENT_TOKEN", "PRISMER_TOKEN_FILE"),
    *("PRISMER_TRANSPORT", "PRISMER_DIALECT", "PRISMER_PROFILE", "XDG_CONFIG_HOME", "NO_COLOR"),
    *("PRISMER_RT_CONNECT_TIMEOUT", "PRISMER_RT_PING_INTERVAL", "PRISMER_RT_PING_TIMEOUT"),
    *("PRISMER_RT_SSE_SILENCE", "PRISMER_RT_BACKOFF_INITIAL", "PRISMER_RT_BACKOFF_MAX"),
    "PRISMER_RT_DEBUG",
)


def section(name: str, level: str = "SH") -> str:
    """The roff source of one section or subsection of the man page."""
    match = re.search(rf"^\.{level} {re.escape(name)}\n(.*?)(?=^\.S[HS] |\Z)", PAGE, re.S | re.M)
    assert match, f"no .{level} {name} in the man page"
    return match.group(1)


def unroff(text: str) -> str:
    """Roff source back to the text a reader sees (for the escapes docgen makes)."""
    for roff, plain in {"\\e": "\\", "\\(aq": "'", "\\(dq": '"', "\\(ti": "~"}.items():
        text = text.replace(roff, plain)
    text = re.sub(r"\\f[BIRP]|\\&", "", text)
    return text.replace("\\-", "-").replace("\\(ga", "`").replace("\\(ha", "^")


def executable(tmp_path: Path) -> str:
    """The installed prismer-rt script, or a stand-in that runs this checkout's."""
    installed = Path(sys.executable).with_name("prismer-rt")
    if installed.exists():
        return str(installed)
    wrapper = tmp_path / "prismer-rt"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m prismer_cli "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


# -- staleness ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(GENERATED))
def test_checked_in_file_is_current(path: str) -> None:
    """Each checked-in completion script and the man page equal what the app generates now."""
    on_disk = (REPO / path).read_text(encoding="utf-8") if (REPO / path).exists() else None
    assert on_disk == GENERATED[path], f"{path} is stale: run `make docs`"


def test_check_mode_lists_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 1 naming every stale file, and 0 once they are written."""
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert all(path in err for path in GENERATED)
    assert docgen.main(["--root", str(tmp_path)]) == 0
    capsys.readouterr()
    (tmp_path / docgen.MAN_PAGE).write_text("stale\n")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"stale: {docgen.MAN_PAGE} (run: python -m tools.docgen)"
    ]


def test_generation_is_deterministic() -> None:
    """Two runs give the same files, dated by the release date of the current version."""
    assert docgen.generate() == GENERATED
    assert f" 1 {docprose.RELEASE_DATES[__version__]} " in PAGE.splitlines()[1]


# -- completions ----------------------------------------------------------------------------
@pytest.mark.parametrize("shell", sorted(docgen.COMPLETIONS))
def test_completion_is_what_show_completion_prints(
    shell: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checked-in script is exactly `prismer-rt --show-completion SHELL`."""
    monkeypatch.setenv(NO_DETECTION, "1")
    result = CliRunner().invoke(app, ["--show-completion", shell], prog_name="prismer-rt")
    assert result.exit_code == 0
    assert result.output == GENERATED[docgen.COMPLETIONS[shell]]


@pytest.mark.parametrize("shell", sorted(docgen.COMPLETIONS))
def test_install_completion_installs_the_same_script(
    shell: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prismer-rt --install-completion SHELL` still works and installs the checked-in text."""
    monkeypatch.setenv(NO_DETECTION, "1")
    result = CliRunner().invoke(app, ["--install-completion", shell], prog_name="prismer-rt")
    assert result.exit_code == 0, result.output
    installed = (isolated_home / INSTALLED[shell]).read_text()
    assert installed.rstrip("\n") == GENERATED[docgen.COMPLETIONS[shell]].rstrip("\n")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["li"], {"listen"}),
        ([""], {"listen", "subscribe", "send", "mark-read", "serve", "config"}),
        (["listen", "--ty"], {"--type"}),
        (["--verbose", "mark"], {"mark-read"}),
        (["config", ""], {"show"}),
    ],
)
def test_bash_completion_completes(words: list[str], expected: set[str], tmp_path: Path) -> None:
    """The bash script, sourced in a real bash, completes commands and options."""
    script = (
        'source "$1"; exe=$2; shift 2; COMP_WORDS=(prismer-rt "$@"); COMP_CWORD=$#; '
        '_prismer_rt_completion "$exe"; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    bash_file = str(REPO / docgen.COMPLETIONS["bash"])
    proc = subprocess.run(
        [
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            script,
            "bash",
            bash_file,
            executable(tmp_path),
            *words,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert expected <= set(proc.stdout.split()), proc.stdout


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_completes(tmp_path: Path) -> None:
    """The fish script, sourced in a real fish, completes commands and options."""
    fish_file = REPO / docgen.COMPLETIONS["fish"]
    script = (
        f"source '{fish_file}'; complete -C 'prismer-rt li'; complete -C 'prismer-rt serve --p'"
    )
    path = f"{Path(executable(tmp_path)).parent}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(
        ["fish", "--no-config", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert [row.split("\t")[0] for row in proc.stdout.splitlines()] == ["listen", "--port"]


@pytest.mark.parametrize(
    ("shell", "extra"),
    [("zsh", {}), ("fish", {"_TYPER_COMPLETE_FISH_ACTION": "get-args"})],
)
def test_zsh_and_fish_protocols_complete(shell: str, extra: dict[str, str], tmp_path: Path) -> None:
    """The program answers the requests that the zsh and fish scripts make."""
    env = {
        **os.environ,
        docgen.COMPLETE_VAR: f"complete_{shell}",
        "_TYPER_COMPLETE_ARGS": "prismer-rt li",
        **extra,
    }
    proc = subprocess.run(
        [executable(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "listen" in proc.stdout
    assert docgen.COMPLETE_VAR in GENERATED[docgen.COMPLETIONS[shell]]


# -- the man page: complete ---------------------------------------------------------------------
def test_man_page_has_every_section() -> None:
    """The sections a user looks for are all there, in the usual order."""
    headings = re.findall(r"^\.SH (.+)$", PAGE, re.M)
    assert headings == [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "CONNECTION OPTIONS",
        "CURSOR FILES",
        "DELIVERY",
        "TOKENS",
        "SIGNALS",
        "RUNNING AS A SERVICE",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ]


@pytest.mark.parametrize("node", NODES[1:], ids=lambda node: node.name)
def test_man_page_documents_every_command_option_and_argument(node: docgen.Node) -> None:
    """Each command has a subsection naming each of its options and arguments, with help."""
    text = unroff(section(f'"{docgen.escape(" ".join(node.path))}"', "SS"))
    flat = " ".join(text.split())
    for param in node.params():
        names = param.opts if param.param_type_name == "option" else [param.make_metavar(node.ctx)]
        assert all(name in text for name in names), f"{node.name}: {names}"
        if param.help and param.param_type_name == "argument":
            assert " ".join(param.help.split()) in flat


def test_man_page_documents_the_root_options() -> None:
    """The options of prismer-rt itself are in OPTIONS or CONNECTION OPTIONS."""
    text = section("OPTIONS") + section("CONNECTION OPTIONS")
    names = [opt for param in NODES[0].params() for opt in param.opts] + ["-h", "--help"]
    for name in names:
        assert rf"\fB{docgen.escape(name)}\fR" in text, name


def test_man_page_shows_defaults_and_metavars() -> None:
    """Defaults and metavars come from the app, as --help shows them."""
    text = " ".join(section('"send"', "SS").split())
    assert r"\fB\-\-wait\fR \fISECONDS\fR" in text
    assert "[default: 10.0; x>=0.0]" in text
    assert "[default: text]" in text


def test_environment_names_every_variable() -> None:
    """ENVIRONMENT has the documented variables and every variable the package reads."""
    text = section("ENVIRONMENT")
    listed = set(re.findall(r"^\\fB([A-Z_]+)\\fR$", text, re.M))
    source = "".join(p.read_text() for p in (REPO / "prismer_cli").rglob("*.py"))
    read = set(re.findall(r"[\"'](PRISMER_[A-Z_]+|AGENT_TOKEN|XDG_CONFIG_HOME)[\"']", source))
    assert read <= listed
    assert set(ENVIRONMENT) <= listed


def test_files_and_exit_status_are_complete() -> None:
    """FILES names the config files and their mode; EXIT STATUS has every ExitStatus."""
    files = section("FILES")
    for path in ("$XDG_CONFIG_HOME/prismer\\-rt/config.toml", "\\(ti/.prismer/config.toml", "0600"):
        assert path in files
    codes = re.findall(r"^\.TP\n\\fB(\d+)\\fR$", section("EXIT STATUS"), re.M)
    assert codes == [str(int(status)) for status in ExitStatus]
    assert "143" in codes


def flat(text: str) -> str:
    """A section as one line of the words a reader sees."""
    text = re.sub(r"\\\[u([0-9A-F]{4,6})\]", lambda m: chr(int(m.group(1), 16)), text)
    return " ".join(unroff(text).replace(r"\(bu", "").split())


@pytest.mark.parametrize(("title", "names"), docgen.README_SECTIONS, ids=lambda v: str(v))
def test_the_man_page_says_what_the_readme_says(title: str, names: tuple[str, ...]) -> None:
    """Cursor files, delivery (invalid lines, isRetry), tokens (write-back), signals (SIGHUP) and
    the service are the README's own words, every paragraph and item of each marked passage."""
    text = flat(section(title))
    for name in names:
        for block in readme.marked()[name]:
            if block.kind != "code":
                words = " ".join(block.text.replace("`", "").split())
                assert words in text, (name, words[:60])


def test_exit_statuses_agree_everywhere() -> None:
    """The README's table, docs/cli.md's and the man page list the same statuses, which are
    ExitStatus's; the man page gives the README's meanings."""
    codes = [int(status) for status in ExitStatus]
    assert [code for code, _ in readme.exit_codes()] == codes
    cli = (REPO / "docs" / "cli.md").read_text().split("## Exit statuses", 1)[1]
    assert [int(c) for c in re.findall(r"^\| (\d+) \|", cli, re.M)] == codes
    man = flat(section("EXIT STATUS"))
    for _, meaning in readme.exit_codes():
        assert " ".join(meaning.replace("`", "").split()) in man


def test_readme_passages_refuse_markdown_the_man_page_cannot_show() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        readme.marked("<!-- man: x -->\n## a heading\n<!-- /man -->\n")
    with pytest.raises(ValueError, match="never closed"):
        readme.marked("<!-- man: x -->\ntext\n")
    assert readme.plain("**Once**, [the page](http://x) `a\\|b`") == "`Once`, the page `a|b`"


def test_examples_include_the_auto_reply() -> None:
    """The documentation page's auto-reply is an example, copyable as it stands."""
    blocks = re.findall(r"^\.nf\n(.*?)^\.fi$", section("EXAMPLES"), re.S | re.M)
    commands = [" ".join(unroff(block).split()) for block in blocks]
    assert AUTO_REPLY in commands
    assert "jq(1)" in unroff(section("SEE ALSO"))
    assert "websocat(1)" in unroff(section("SEE ALSO"))
    assert docprose.DOCS_URL in unroff(section("SEE ALSO"))


# -- the man page: clean roff -------------------------------------------------------------------
def test_escape_makes_text_inert() -> None:
    """Hyphens, quotes, backslashes and non-ASCII become escapes; a leading dot is guarded."""
    assert docgen.escape("--a 'b' \\n \"c\" ~ é") == (
        r"\-\-a \(aqb\(aq \en \(dqc\(dq \(ti \[u00E9]"
    )
    assert docgen.line(".payload") == r"\&.payload"
    assert docgen.wrap(".a " * 40, 20)[0].startswith(r"\&")
    assert docgen.inline("run `--count` now") == r"run \fB\-\-count\fR now"
    assert docgen.item("--x", "") == [".TP", "--x", r"\&"]


def test_wrap_keeps_fonts_on_one_line() -> None:
    """Long text is split at spaces, never inside a bold run, and every line is clean."""
    roff = docgen.escape("word " * 30) + docgen.bold("a b c d e f g h") + " end"
    lines = docgen.wrap(roff, 30)
    assert len(lines) > 3
    assert docgen.lint_roff("\n".join(lines) + "\n") == []
    assert " ".join(lines) == roff


def test_man_page_passes_the_roff_lint() -> None:
    """Every line of the page is a known macro or clean text."""
    assert docgen.lint_roff(PAGE) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (".bogus\n", "unknown macro"),
        (".payload.content\n", "unknown macro"),
        ("'quoted\n", "read as a request"),
        ("\\fBbold\n", "not ended"),
        ("\\fBa \\fIb\\fR\n", "font change inside"),
        ("plain\\fR\n", "no font to end"),
        ("a \\x b\n", "unknown escape"),
        ("\n", "blank line"),
        ("text \n", "trailing white space"),
        (" indented\n", "leading space"),
        (".SH NAME\n.PP\n", "right after a heading"),
        ("word " * 20 + "end\n", "longer than 80"),
        ("no newline", "no newline"),
    ],
)
def test_roff_lint_catches_mistakes(source: str, problem: str) -> None:
    """The lint reports each kind of mistake it guards against."""
    assert any(problem in found for found in docgen.lint_roff(source)), docgen.lint_roff(source)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_renders_without_warnings() -> None:
    """groff -man -ww renders the page with no warning at all."""
    proc = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(REPO / docgen.MAN_PAGE)],
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed")
def test_mandoc_lint_is_clean() -> None:
    """mandoc -Tlint finds nothing, not even style hints."""
    proc = subprocess.run(
        ["mandoc", "-Tlint", str(REPO / docgen.MAN_PAGE)], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# -- the app itself -----------------------------------------------------------------------------
def _help_example_params() -> list[object]:
    return [pytest.param(list(node.path), id=node.name) for node in NODES]


@pytest.mark.parametrize("path", _help_example_params())
def test_help_carries_an_example(path: list[str]) -> None:
    """`--help` of the app and of each command shows an Example line."""
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="prismer-rt")
    assert result.exit_code == 0
    assert re.search(r"^\s*Examples?:(\s|$)", result.output, re.M), result.output


@pytest.mark.parametrize("entry", ["console script", "cli"])
@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["--show-completion", "bash"]], ids=" ".join
)
def test_fast_paths_import_nothing_heavy(argv: list[str], entry: str) -> None:
    """--help, --version and --show-completion load no network or rich-text library, nor the
    build-time tools: through the console script, and through the CLI's own main."""
    if entry == "cli":
        start = f"from {CLI_MAIN.__module__} import main\nmain()\n"
    else:
        start = "import runpy\nrunpy.run_module('prismer_cli', run_name='__main__')\n"
    code = (
        "import contextlib, sys\n"
        f"sys.argv = ['prismer-rt', *{argv!r}]\n"
        "with contextlib.suppress(SystemExit):\n"
        + "".join(f"    {line}\n" for line in start.splitlines())
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith(('tools', 'prismer_cli.doc'))), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr.splitlines()[-1] == "[]", proc.stderr
