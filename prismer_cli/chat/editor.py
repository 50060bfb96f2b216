"""The input line of an interactive `chat`: typed at the bottom, with events printed above it.

The terminal is put in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts) and
the line is drawn by this module: the prompt and what was typed, its tail when it is wider than
the terminal. Anything printed meanwhile (`above`) clears the line, writes the text, and draws
the line again, so an event never lands in the middle of what the person is typing.

Keys: text, Enter, Backspace, Ctrl-U (clear), Ctrl-W (the last word), Ctrl-L (redraw), Ctrl-D
(on an empty line: the end). Other control keys and escape sequences (arrows) are ignored.
"""

from __future__ import annotations

import codecs
import os
import termios
import threading
import tty
from types import TracebackType
from typing import Any

from prismer_cli.view.pretty import printable
from prismer_cli.view.width import cells

CLEAR = "\r\x1b[K"
END = object()  # what feed() returns for Ctrl-D on an empty line


class LineEditor:
    def __init__(self, fd_in: int, fd_out: int, prompt: str = "> ") -> None:
        self._in = fd_in
        self._out = fd_out
        self.prompt = prompt
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._escape = ""  # an escape sequence being skipped
        self._lock = threading.Lock()
        self._saved: list[Any] | None = None

    def __enter__(self) -> LineEditor:
        self._saved = termios.tcgetattr(self._in)
        tty.setcbreak(self._in)
        self._draw()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._write(CLEAR)
        if self._saved is not None:
            termios.tcsetattr(self._in, termios.TCSADRAIN, self._saved)

    # -- output ----------------------------------------------------------------------------
    def above(self, text: str) -> None:
        """Print `text` (whole lines) above the input line, then draw the line again."""
        if not text:
            return
        with self._lock:
            self._write(CLEAR + text.replace("\r\n", "\n") + ("" if text.endswith("\n") else "\n"))
            self._write(self._line())

    def _draw(self) -> None:
        with self._lock:
            self._write(CLEAR + self._line())

    def _line(self) -> str:
        """The prompt and the typed text, its tail if it is wider than the terminal."""
        text = printable(self.buffer)
        try:
            room = os.get_terminal_size(self._out).columns - cells_of(self.prompt) - 1
        except OSError:
            room = 1 << 30
        if cells_of(text) > room > 1:
            tail: list[str] = []
            used = 1  # the ellipsis
            for char in reversed(text):
                used += cells(char)
                if used > room:
                    break
                tail.append(char)
            text = "…" + "".join(reversed(tail))
        return self.prompt + text

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            try:
                written = os.write(self._out, data)
            except InterruptedError:
                continue
            except OSError:
                return  # the terminal is gone: nothing left to show
            data = data[written:]

    # -- input -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[str | object]:
        """Keys in; the lines finished by Enter (and END for Ctrl-D on an empty line)."""
        done: list[str | object] = []
        for char in self._decoder.decode(data):
            if self._escape:
                self._escape += char
                if _escape_done(self._escape):
                    self._escape = ""
                continue
            if char == "\x1b":
                self._escape = char
            elif char in "\r\n":
                line, self.buffer = self.buffer, ""
                with self._lock:
                    self._write(CLEAR + self._line())
                done.append(line)
            elif char == "\x04":
                if not self.buffer:
                    done.append(END)
                    return done
            elif char in "\x7f\x08":
                self.buffer = self.buffer[:-1]
            elif char == "\x15":
                self.buffer = ""
            elif char == "\x17":
                self.buffer = self.buffer.rstrip()
                self.buffer = self.buffer[: self.buffer.rfind(" ") + 1]
            elif char == "\t":
                self.buffer += " "
            elif char >= " ":
                self.buffer += char
        self._draw()
        return done


def _escape_done(sequence: str) -> bool:
    """Whether an escape sequence (ESC [ A, ESC O P, ESC [ 3 ~, Alt-x) has ended."""
    if len(sequence) == 2:
        return sequence[1] not in "[O"
    return sequence[-1].isalpha() or sequence[-1] == "~"


def cells_of(text: str) -> int:
    return sum(cells(c) for c in text)
