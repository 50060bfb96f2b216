"""A token's text: read from a token file (refused when others can read it, or when it is not one
token alone on its line), and checked to be visible ASCII before it goes into an HTTP header."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

from prismer_cli.errors import UsageError


def readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def refuse_open_file(path: Path, what: str) -> None:
    if readable_by_others(path):
        mode = stat.S_IMODE(path.stat().st_mode)
        raise UsageError(
            f"refusing to read a token from {path}: mode {mode:04o} lets other users read it; "
            f"run: chmod 600 {path}"
        )


def read_token_file(name: str, stdin: BinaryIO | None = None, *, again: bool = False) -> str:
    """The token alone on its line in a token file (`-` is stdin; blank lines around it are
    ignored), refused when others can read the file, when it is not a regular file or a pipe
    (a directory, a device such as /dev/null), empty, not UTF-8, or more than one line.
    `again` (a reload, SIGHUP): a pipe is refused too, as it was read once and would block."""
    if name == "-":
        if stdin is None:
            raise UsageError("--token-file - reads stdin, which this command needs for its input")
        return _token_of(stdin.readline(), "the token on stdin (--token-file -)")
    path = Path(name).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise UsageError(f"cannot read a token from {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"the token file {path} is a directory, not a file")
    if again and stat.S_ISFIFO(mode):
        raise UsageError(f"the token file {path} is a pipe, read once already: not read again")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):  # a pipe: --token-file <(pass show x)
        raise UsageError(
            f"the token file {path} is not a regular file (a device, socket or the like); "
            "give the file that holds the token"
        )
    refuse_open_file(path, "token file")
    try:
        with path.open("rb") as handle:
            data = handle.read(_TOKEN_FILE_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read a token from {path}: {exc.strerror or exc}") from None
    if len(data) > _TOKEN_FILE_LIMIT:
        raise UsageError(
            f"the token file {path} is larger than {_TOKEN_FILE_LIMIT // 1024} KiB: "
            "not a token file"
        )
    return _token_of(data, f"the token file {path}")


_TOKEN_FILE_LIMIT = 64 * 1024  # a JWT is well under 2 KiB


def _token_of(data: bytes, what: str) -> str:
    """The one non-blank line of `data`; UsageError saying what is wrong with it otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text (a binary file?)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise UsageError(f"{what} is empty")
    if len(lines) > 1:
        raise UsageError(
            f"{what} holds {len(lines)} lines; it must hold the token alone on one line"
        )
    return lines[0]


def check_token_text(token: str, source: str) -> None:
    """A token is visible ASCII (a JWT, an API key): anything else is refused here, exit 2,
    rather than failing in an HTTP header later ("unexpected UnicodeEncodeError", exit 1)."""
    if token.isascii() and token.isprintable() and " " not in token:
        return
    at, char = next((i, c) for i, c in enumerate(token) if not ("!" <= c <= "~"))
    if char == "\ufeff":
        what = "a byte-order mark (U+FEFF, which some editors add)"
    elif char.isprintable() and not char.isspace():
        what = f"{char!r} (U+{ord(char):04X})"
    else:
        what = f"U+{ord(char):04X} (a space or control character)"
    raise UsageError(
        f"the token ({source}) holds {what} at character {at + 1}: a token is ASCII text "
        "without spaces; check where it was copied from"
    )
