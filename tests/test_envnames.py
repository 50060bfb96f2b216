"""Every environment variable the client reads is in prismer_cli.envnames, which the suite clears
for each test and the benchmark for each client: a new variable missing from it would let a
user's own setting (or token) leak into a test or a benchmark run."""

from __future__ import annotations

import re
from pathlib import Path

from prismer_cli import envnames

PACKAGE = Path(envnames.__file__).parent
# `env.get("NAME")`, `os.environ.get("NAME")`, `environ["NAME"]`, `env["NAME"]`
READ = re.compile(r"\b(?:environ|env)(?:\.get\(|\[)\"([A-Z_]+)\"")
# Names read that are not settings of prismer-rt: the system's and the libraries' own.
SYSTEM = {"HOME", "XDG_CONFIG_HOME", "TERM", "COLUMNS", "NO_COLOR"}
CA_BUNDLES = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}  # requests' own: they only add trust


def names_read() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "server" in path.relative_to(PACKAGE).parts:  # `serve` is not the client
            continue
        found.update(READ.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_scan_finds_the_variables_it_should() -> None:
    assert {"PRISMER_TOKEN", "AGENT_TOKEN", "PRISMER_RT_OUTPUT", "HOME"} <= names_read()


def test_every_variable_the_client_reads_is_listed() -> None:
    listed = set(envnames.SETTINGS) | set(envnames.PROXIES)
    unlisted = names_read() - listed - SYSTEM - CA_BUNDLES
    assert not unlisted, f"add to prismer_cli/envnames.py: {sorted(unlisted)}"


def test_the_option_variables_are_listed() -> None:
    # config.py reads these by the option's name (`PRISMER_{NAME}`), which the scan cannot see.
    assert {"PRISMER_TRANSPORT", "PRISMER_DIALECT"} <= set(envnames.SETTINGS)
