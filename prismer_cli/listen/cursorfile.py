"""The cursor file of `listen --cursor-file` (docs/cli.md "Cron and scripts").

One JSON object: `{"version": 1, "server": URL, "user": USER_ID, "dialect": NAME, "cursor": SEQ}`
(`dialect` left out while unknown: a `--no-follow` run without `--dialect` does not detect it);
never the token. A cursor belongs to one server and one user: a run with
another URL or token refuses the file rather than skipping or repeating events.

Saved atomically (a temporary file in the same folder, fsync, rename; mode 0600; parent folders
created). `FILE.lock` is held with flock(2) for the whole run, so a second listen on the same file
refuses at once and overlapping cron runs never print an event twice.

What a restart cannot fix is exit 2 (an empty name, a path that is not a regular file, a folder
that cannot be written); what passes by itself is exit 75 (another listen holds the file, the
disk is full): docs/cli.md "Exit statuses".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import orjson

from prismer_cli.errors import TemporaryFailure, UsageError
from prismer_cli.transport.urls import http_base

VERSION = 1
# A save that fails for one of these may succeed later (a full disk, a quota, a file size limit):
# exit 75, not 2 (docs/cli.md "Exit status").
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def check_path(name: str) -> None:
    """Refuse, before anything connects, a --cursor-file that cannot be one: empty (an unset
    variable in a crontab), or something other than a regular file (a directory, /dev/null)."""
    if not name.strip():
        raise UsageError(
            "--cursor-file is empty (an unset variable?): give the file that keeps the cursor"
        )
    path = Path(name).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # made on the first save
    except OSError as exc:
        raise UsageError(f"cannot use the cursor file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, a pipe...)"
        raise UsageError(f"the cursor file {path} is {what}: give a file of its own")


class CursorFile:
    def __init__(self, path: str) -> None:
        check_path(path)
        self.path = Path(path).expanduser()
        self._lock_fd: int | None = None
        self.saved: int | None = None
        self.binding: dict[str, Any] = {}

    def lock(self) -> None:
        """Take FILE.lock, or refuse at once when another listen holds it (exit 75); a no-op
        when this one holds it already (a start that is tried again: engine.py)."""
        if self._lock_fd is not None:
            return
        check_path(str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot use the cursor file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise TemporaryFailure(
                f"another listen holds {self.path} (its lock {self.path}.lock is taken); "
                "a cursor file serves one listen at a time"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self, server: str, user: str) -> int | None:
        """The saved cursor, or None for a new file; refuses one of another server or user."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot read the cursor file {self.path}: {exc.strerror}") from None
        try:
            data = orjson.loads(text)
            cursor = data["cursor"]
            if type(cursor) is not int or cursor < 0 or not isinstance(data, dict):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UsageError(
                f"the cursor file {self.path} is not one of prismer-rt's (delete it to start over)"
            ) from None
        if data.get("server") != server_key(server):
            raise UsageError(
                f"the cursor file {self.path} belongs to another server "
                f"({data.get('server')}); give it its own file"
            )
        if data.get("user") != user:
            raise UsageError(
                f"the cursor file {self.path} belongs to another user ({data.get('user')}, "
                f"this token is {user}); give each token its own file"
            )
        self.binding = data
        self.saved = cursor
        return cursor

    def save(
        self,
        cursor: int,
        server: str,
        user: str,
        dialect: str | None,
        *,
        force: bool = False,
        after: str = "",
    ) -> None:
        """Write atomically: a temporary file in the same folder, fsync, rename, mode 0600;
        nothing when the file holds this cursor already, unless `force`. A failure is
        TemporaryFailure (a full disk: exit 75) or UsageError (exit 2); `after` says what it
        means for the events."""
        try:
            self._write(cursor, server, user, dialect, force)
        except OSError as exc:
            problem = f"cannot save the cursor to {self.path}: {exc.strerror or exc}"
            problem += f"; {after}" if after else ""
            if exc.errno in TRANSIENT_ERRNOS:
                raise TemporaryFailure(problem) from None
            raise UsageError(problem) from None

    def _write(self, cursor: int, server: str, user: str, dialect: str | None, force: bool) -> None:
        dialect = dialect or self.binding.get("dialect")
        if cursor == self.saved and dialect == self.binding.get("dialect") and not force:
            return
        data: dict[str, Any] = {"version": VERSION, "server": server_key(server), "user": user}
        if dialect:  # left out while unknown (a --no-follow run without --dialect)
            data["dialect"] = dialect
        data["cursor"] = cursor
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, orjson.dumps(data) + b"\n")
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temp, self.path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        with contextlib.suppress(OSError):  # the rename itself, durable
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.saved = cursor
        self.binding = data


def server_key(url: str) -> str:
    """The server a cursor belongs to: the base URL, normalised, never with a token."""
    return http_base(url)
