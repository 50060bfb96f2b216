"""Run the real `prismer-rt` on a pseudo-terminal, as a person at a terminal would.

    term = Terminal("listen", "--pretty", env=env, columns=40)
    term.expect("connected")          # waits (bounded) for text on the screen
    term.type("hello\\r")             # keys, as bytes a terminal sends
    code = term.wait()

stdin, stdout and stderr are the terminal (a window of `columns` x 24); everything the
program writes is collected in `screen`, escapes included.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping

from tests.support.cli import command


class Terminal:
    running: list[Terminal] = []

    def __init__(self, *args: str, env: Mapping[str, str], columns: int = 80) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self._master = master
        self.proc = subprocess.Popen(
            command(*args),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            start_new_session=True,  # the terminal becomes its controlling terminal
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.screen = ""
        Terminal.running.append(self)

    def _read(self, timeout: float) -> bool:
        """Collect what is there within `timeout`; False at the end of output."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every writer has gone
            return False
        if not data:
            return False
        self.screen += data.decode("utf-8", "replace")
        return True

    @property
    def text(self) -> str:
        """The screen without colours and cursor movements."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen)

    def expect(self, text: str, timeout: float = 10.0, after: int = 0) -> int:
        """Wait until `text` is in `text` (after position `after`); its position there."""
        end = time.monotonic() + timeout
        while text not in self.text[after:]:
            if time.monotonic() > end or not self._read(0.05):
                raise AssertionError(f"{text!r} never came; the screen:\n{self.screen!r}")
        return self.text.index(text, after)

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def wait(self, timeout: float = 10.0) -> int:
        """Read to the end of output; the exit status."""
        end = time.monotonic() + timeout
        while self.proc.poll() is None or self._read(0):
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"did not finish; the screen:\n{self.screen}")
            if not self._read(0.05) and self.proc.poll() is not None:
                break
        code = self.proc.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self._master)
        except OSError:
            return

    @classmethod
    def reap(cls) -> None:
        while cls.running:
            cls.running.pop().close()
