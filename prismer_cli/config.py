"""Where each setting comes from: command line, environment, profile, SDK login, defaults.

Precedence, highest first (README "Configuration"):
1. the command line (`--url`, `--token`, `--token-file`, `--transport`, `--dialect`);
2. the environment (`PRISMER_URL`, then `PRISMER_BASE_URL`; `PRISMER_TOKEN`, then `AGENT_TOKEN`;
   `PRISMER_TOKEN_FILE`, `PRISMER_TRANSPORT`, `PRISMER_DIALECT`);
3. the selected profile of `$XDG_CONFIG_HOME/prismer-rt/config.toml` (`--profile` or
   `PRISMER_PROFILE`; top-level keys are the default profile, `[profiles.NAME]` override them);
   then `$XDG_CONFIG_HOME/prismer-rt/token`, the token file `register` writes;
4. the official SDK's login, `~/.prismer/config.toml` (`[auth] im_token`, `[default] base_url`);
5. the defaults.
The whole file is validated before anything connects (`validate`): an unknown key, a value of the
wrong type, a bad URL or choice is a usage error naming the file and the key, never skipped.
A token is never read from a file that other users can read (mode wider than 0600), as ssh does;
the SDK's own file is the exception, since `prismer-py register` writes it 0644: it gets a warning.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from prismer_cli.errors import UsageError
from prismer_cli.records import Frozen, Record, replace
from prismer_cli.tokentext import (
    check_token_text,
    read_token_file,
    readable_by_others,
    refuse_open_file,
)

if TYPE_CHECKING:  # imported where a token comes from a file: not for one from the environment
    from prismer_cli.auth.stores import TokenFile, TokenStore

DEFAULT_URL = "https://cloud.prismer.dev"
TRANSPORTS = ("auto", "ws", "sse")
DIALECT_CHOICES = ("auto", "docs", "server")

# Every key of config.toml (top level, or in [profiles.NAME]) and its TOML type: a new setting
# is one line here.
KEYS: dict[str, type] = {
    "url": str,
    "token": str,
    "token_file": str,
    "transport": str,
    "dialect": str,
    "no_refresh": bool,
    "output": str,  # json | pretty: the view of events and results (prismer_cli/view)
    "webhook_secret": str,  # --forward-to's signing secret (webhook_secret_setting)
}
SDK_KEYS = {"auth": ("im_token",), "default": ("base_url",)}  # what is read of the SDK's file
CHOICES: dict[str, tuple[str, ...]] = {
    "transport": TRANSPORTS,
    "dialect": DIALECT_CHOICES,
    "output": ("json", "pretty"),
}
_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    dict: "a table",
    list: "an array",
}


class CommandLine(Frozen):
    """The connection options as the command line gave them, before or after the subcommand."""

    url: str | None
    token: str | None
    token_file: str | None
    transport: str | None
    dialect: str | None
    profile: str | None
    verbose: bool
    quiet: bool
    no_refresh: bool
    trace: bool  # --trace: the wire on stderr (prismer_cli/transport/trace.py)

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        transport: str | None = None,
        dialect: str | None = None,
        profile: str | None = None,
        verbose: bool = False,
        quiet: bool = False,
        no_refresh: bool = False,
        trace: bool = False,
    ) -> None:
        self._init(locals())

    def merged(self, other: CommandLine) -> CommandLine:
        """`other` (a command's own options) over these (those given before the subcommand)."""
        given = {k: v for k, v in vars(other).items() if v not in (None, False)}
        return replace(self, **given)


class Setting(Frozen):
    value: str | None
    source: str  # where it came from, for `config show` and error messages
    store: TokenStore | None  # the token's file, where a refreshed one is written back

    def __init__(self, value: str | None, source: str, store: TokenStore | None = None) -> None:
        self._init(locals())


class Settings(Record):
    url: Setting
    token: Setting
    transport: Setting
    dialect: Setting
    profile: str | None
    warnings: list[str]
    no_refresh: bool

    def __init__(
        self,
        url: Setting,
        token: Setting,
        transport: Setting,
        dialect: Setting,
        profile: str | None,
        warnings: list[str] | None = None,
        no_refresh: bool = False,  # --no-refresh, or `no_refresh = true` in the profile
    ) -> None:
        warnings = [] if warnings is None else warnings
        self._init(locals())


def config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "prismer-rt" / "config.toml"


def default_token_path(env: Mapping[str, str]) -> Path:
    """Where `register` keeps the token, and where it is found when nothing else gives one."""
    return config_path(env).with_name("token")


def sdk_config_path(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME", "~")).expanduser() / ".prismer" / "config.toml"


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    # Imported here, where a file exists: --help and --version never pay for the parser.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with handle:
        try:
            data: dict[str, Any] = tomllib.load(handle)
        except UnicodeDecodeError:
            raise UsageError(f"cannot read {path}: it is not UTF-8 text") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from exc
    return data


def validate(data: dict[str, Any], path: Path) -> None:
    """Check every key and value of the file, every profile included; raises UsageError."""
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(t, dict) for t in profiles.values()):
        raise UsageError(f"{path}: profiles must be tables, as in [profiles.NAME]")
    _validate_table({k: v for k, v in data.items() if k != "profiles"}, path, "")
    for name, table in profiles.items():
        _validate_table(table, path, f"[profiles.{name}] ")


def _validate_table(table: dict[str, Any], path: Path, where: str) -> None:
    import difflib

    for key, value in table.items():
        expected = KEYS.get(key)
        if expected is None:
            close = difflib.get_close_matches(key, [*KEYS, "profiles"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(KEYS)
            raise UsageError(f"{path}: {where}unknown key {key!r}{hint}; known keys: {known}")
        if type(value) is not expected:
            raise UsageError(
                f"{path}: {where}{key} must be {_TYPE_NAMES[expected]}, "
                f"not {_TYPE_NAMES.get(type(value), type(value).__name__)} ({value!r})"
            )
        choices = CHOICES.get(key)
        if choices is not None and value not in choices:
            raise UsageError(
                f"{path}: {where}{key} must be one of {', '.join(choices)}, not {value!r}"
            )
        if key == "url":
            from prismer_cli.transport.urls import http_base

            try:
                http_base(str(value))
            except UsageError as exc:
                raise UsageError(f"{path}: {where}url: {exc}") from None


def _store_of(name: str) -> TokenFile | None:
    """Where a refreshed token goes: the token file, unless it is stdin or a pipe."""
    from prismer_cli.auth.stores import TokenFile

    path = Path(name).expanduser()
    return TokenFile(path) if name != "-" and path.is_file() else None


def _toml_value(path: Path, table: tuple[str, ...], key: str) -> TokenStore:
    from prismer_cli.auth.stores import TomlValue

    return TomlValue(path, table, key)


def _profile_table(data: dict[str, Any], profile: str | None, path: Path) -> dict[str, Any]:
    merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if profile:
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not isinstance(profiles.get(profile), dict):
            known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
            raise UsageError(f"no profile {profile!r} in {path} (known: {known or 'none'})")
        merged.update(profiles[profile])
    return merged


def _first(*candidates: tuple[str | None, str]) -> Setting | None:
    for value, source in candidates:
        if value:
            return Setting(value, source)
    return None


def resolve(
    cli: CommandLine, env: Mapping[str, str], *, stdin: BinaryIO | None = None, again: bool = False
) -> Settings:
    """Resolve every setting with the precedence of the module docstring; `again`: a reload
    (SIGHUP), which reads no pipe a second time (read_token_file)."""
    profile = cli.profile or env.get("PRISMER_PROFILE") or None
    path = config_path(env)
    data = _load_toml(path)
    validate(data, path)
    table = _profile_table(data, profile, path)
    where = f"{path}" + (f" [profiles.{profile}]" if profile else "")
    sdk_path = sdk_config_path(env)
    sdk_file: dict[str, Any] | None = None

    def sdk(section: str) -> dict[str, Any]:
        """A table of the SDK's file, read only when nothing before it gave the setting."""
        nonlocal sdk_file
        if sdk_file is None:
            sdk_file = _load_toml(sdk_path)
        table = sdk_file.get(section)
        table = table if isinstance(table, dict) else {}
        for key in SDK_KEYS[section]:
            if key in table and not isinstance(table[key], str):
                raise UsageError(f"{sdk_path}: [{section}] {key} must be a string")
        return table

    warnings: list[str] = []

    if cli.token and cli.token_file:
        raise UsageError("give --token or --token-file, not both")
    token = _first((cli.token, "--token"))
    if token is None and cli.token_file:
        token = Setting(
            read_token_file(cli.token_file, stdin, again=again),
            f"--token-file {cli.token_file}",
            _store_of(cli.token_file),
        )
    token = token or _first(
        (env.get("PRISMER_TOKEN"), "env PRISMER_TOKEN"), (env.get("AGENT_TOKEN"), "env AGENT_TOKEN")
    )
    if token is None and env.get("PRISMER_TOKEN_FILE"):
        name = env["PRISMER_TOKEN_FILE"]
        token = Setting(
            read_token_file(name, None, again=again),
            f"env PRISMER_TOKEN_FILE ({name})",
            _store_of(name),
        )
    if token is None and isinstance(table.get("token"), str):
        refuse_open_file(path, "config file")
        in_profile = bool(profile) and "token" in data["profiles"][profile]
        table_name = ("profiles", profile) if in_profile and profile else ()
        token = Setting(table["token"], where, _toml_value(path, table_name, "token"))
    if token is None and isinstance(table.get("token_file"), str):
        name = table["token_file"]
        token = Setting(
            read_token_file(name, None, again=again),
            f"{where} token_file ({name})",
            _store_of(name),
        )
    default_token = default_token_path(env)
    if token is None and default_token.exists():
        from prismer_cli.auth.stores import TokenFile

        token = Setting(
            read_token_file(str(default_token), None, again=again),
            str(default_token),
            TokenFile(default_token),
        )
    if token is None and _str(sdk("auth").get("im_token")):
        if readable_by_others(sdk_path):
            warnings.append(f"{sdk_path} is readable by other users; run: chmod 600 {sdk_path}")
        token = Setting(
            sdk("auth")["im_token"],
            f"{sdk_path} [auth] im_token",
            _toml_value(sdk_path, ("auth",), "im_token"),
        )

    url = _first(
        (cli.url, "--url"),
        (env.get("PRISMER_URL"), "env PRISMER_URL"),
        (env.get("PRISMER_BASE_URL"), "env PRISMER_BASE_URL"),
        (_str(table.get("url")), where),
    )
    if url is None:
        url = _first(
            (_str(sdk("default").get("base_url")), f"{sdk_path} [default] base_url")
        ) or Setting(DEFAULT_URL, "default")
    assert url.value is not None
    # Imported here: the CLI imports this module for CommandLine, and `--help` stays fast.
    from prismer_cli.transport.urls import http_base

    try:
        http_base(url.value)
    except UsageError as exc:
        raise UsageError(f"{exc} ({url.source})") from None

    transport = _choice("transport", TRANSPORTS, cli.transport, env, table, where)
    dialect = _choice("dialect", DIALECT_CHOICES, cli.dialect, env, table, where)
    token = token or Setting(None, "not set")
    if token.value:
        check_token_text(token.value, token.source)
    settings = Settings(url, token, transport, dialect, profile, warnings)
    settings.no_refresh = cli.no_refresh or table.get("no_refresh") is True
    return settings


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _choice(
    name: str,
    choices: tuple[str, ...],
    given: str | None,
    env: Mapping[str, str],
    table: dict[str, Any],
    where: str,
) -> Setting:
    setting = _first(
        (given, f"--{name}"),
        (env.get(f"PRISMER_{name.upper()}"), f"env PRISMER_{name.upper()}"),
        (_str(table.get(name)), where),
    ) or Setting("auto", "default")
    if setting.value not in choices:
        raise UsageError(
            f"{name} must be one of {', '.join(choices)}, not {setting.value!r} ({setting.source})"
        )
    return setting


def profile_value(cli: CommandLine, env: Mapping[str, str], key: str) -> object:
    """One key of the selected profile of the config file (None when absent)."""
    path = config_path(env)
    profile = cli.profile or env.get("PRISMER_PROFILE") or None
    return _profile_table(_load_toml(path), profile, path).get(key)


def webhook_secret_setting(
    given: str | None, cli: CommandLine, env: Mapping[str, str], default: str
) -> Setting:
    """--forward-to's secret: --webhook-secret, env PRISMER_WEBHOOK_SECRET, the profile's
    `webhook_secret` (never from a file other users can read), else the server's default."""
    found = _first(
        (given, "--webhook-secret"),
        (env.get("PRISMER_WEBHOOK_SECRET"), "env PRISMER_WEBHOOK_SECRET"),
    )
    if found is not None:
        return found
    path = config_path(env)
    value = profile_value(cli, env, "webhook_secret")
    if isinstance(value, str) and value:
        if readable_by_others(path):
            mode = stat.S_IMODE(path.stat().st_mode)
            raise UsageError(
                f"refusing to read webhook_secret from {path}: mode {mode:04o} lets other "
                f"users read it; run: chmod 600 {path}"
            )
        return Setting(value, str(path))
    return Setting(default, "default")
