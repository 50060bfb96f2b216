"""Where a token came from, and writing a refreshed one back there (docs/cli.md "register and
whoami").

A token file holds the token on its one line; a TOML file (prismer-rt's own config file, or the
official SDK's `~/.prismer/config.toml` `[auth] im_token`) gets the one value replaced in place
(tomledit.py). Every write is atomic: a temporary file in the same folder, fsync, the file's
mode kept, rename over the old one (through a symlink to its target). A token from the
environment or the command line has no store: it is refreshed in memory only.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


class CannotSave(Exception):
    """The refreshed token could not be written back; the message says why."""


@dataclass(frozen=True)
class TokenFile:
    path: Path

    def describe(self) -> str:
        return str(self.path)

    def save(self, token: str) -> None:
        write_atomically(self.path, (token + "\n").encode("utf-8"))


@dataclass(frozen=True)
class TomlValue:
    path: Path
    table: tuple[str, ...]  # () for the top level
    key: str

    def describe(self) -> str:
        return f"{self.path} [{'.'.join(self.table)}] {self.key}" if self.table else str(self.path)

    def save(self, token: str) -> None:
        from prismer_cli.auth.tomledit import NotEditable, replace_value

        try:
            data = self.path.read_bytes()
            text = replace_value(data.decode("utf-8"), self.table, self.key, token)
        except (OSError, UnicodeDecodeError, NotEditable) as exc:
            raise CannotSave(f"cannot edit {self.describe()}: {exc}") from None
        write_atomically(self.path, text.encode("utf-8"))


TokenStore = TokenFile | TomlValue


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` by `data` atomically, with `mode`, else the file's own (0600 if new)."""
    import tempfile  # here: a command that saves nothing does not pay for it

    target = Path(os.path.realpath(path))
    try:
        old_mode = stat.S_IMODE(target.stat().st_mode) if mode is None else mode
    except FileNotFoundError:
        old_mode = 0o600
    except OSError as exc:
        raise CannotSave(f"cannot write {path}: {exc}") from None
    try:
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise CannotSave(f"cannot write {path}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), old_mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CannotSave(f"cannot write {path}: {exc}") from None
    with contextlib.suppress(OSError):  # the rename itself, made durable
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
