"""A slow reader of a command's stdout: a consumer downstream that cannot keep up, so that the
command's writes wait on the pipe (a catch-up that takes seconds, on a machine of any speed)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.cli import command


class SlowReader(threading.Thread):
    """Reads a process's stdout a chunk at a time with pauses: a slow consumer downstream."""

    def __init__(self, stream: Any, chunk: int = 8192, pause: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.stream, self.chunk, self.pause = stream, chunk, pause
        self.data = bytearray()

    def run(self) -> None:
        while True:
            block = self.stream.read1(self.chunk)
            if not block:
                return
            self.data += block
            time.sleep(self.pause)

    def lines(self) -> int:
        return self.data.count(b"\n")


@contextmanager
def slowly_read(
    env: dict[str, str], *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], SlowReader]]:
    """`prismer-rt ARGS`, its stdout read by a SlowReader; killed and closed after."""
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    reader = SlowReader(proc.stdout)
    reader.start()
    try:
        yield proc, reader
    finally:
        proc.kill()
        proc.wait()
        reader.join(10)
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()
