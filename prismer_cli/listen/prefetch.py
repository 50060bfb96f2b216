"""The catch-up's pages, one read ahead (catchup.py), while the main thread prints the page
before, over the reader's one keep-alive connection: `read_ahead` gives one of two ways.

`Asked`, for a plain http:// log (SyncReader.asks_ahead, transport/keepalive.py): the next page
is asked for before this one is handed over, in this thread; the server answers and the kernel
keeps the answer while this one prints. No thread, no interpreter lock to share.

`Ahead`, for any other (TLS, a proxy, --trace: requests cannot send a request and read its
answer later): a thread of its own reads the next page.

The pages come in order, each once, as `SyncReader.after` gives them, and so does a failure
(a --timeout, a 401, a log that answers 5xx): it is raised in the main thread where the next
page would have been read, once the pages read before it are handed over. At most two pages
wait (one handed over, one being read); the cursor only follows what the main thread printed.

Signals stay flags (prismer_cli/signals.py): a stop cuts the page under way (its step's socket
is shut by the watchdog) and the main thread raises the stop at its next safe point: between two
pages, or each time its bounded wait for a page returns. Every wait is bounded, here and in the
thread; `close()` ends the thread (the page under way cut at once) before the reader is used by
anyone else, waiting at most `join_limit` seconds.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

from prismer_cli import signals
from prismer_cli.errors import ConnectError
from prismer_cli.listen.eventlog import SyncReader
from prismer_cli.log import Log
from prismer_cli.protocol.endpoints import JSON

TICK = 0.1  # the longest a wait goes without looking at the stop flags
_PAGE, _END, _FAILED = 0, 1, 2


def read_ahead(reader: SyncReader, since: int, log: Log) -> Asked | Ahead:
    """The events of each page after `since`, read one page ahead (module docstring)."""
    if reader.asks_ahead:
        return Asked(reader, since)
    return Ahead(reader, since, log, reader.step_limit)


class Asked:
    """The events of each page after `since` (SyncReader.after), the next page asked for
    before this one is handed over. A stop cuts the page under way as any step's (watchdog)."""

    def __init__(self, reader: SyncReader, since: int) -> None:
        self._reader = reader
        self._since = since

    def __iter__(self) -> Iterator[list[JSON]]:
        return self._reader.after(self._since, ask_ahead=True)

    def close(self) -> None:
        """No thread to end: a page asked for and not read goes, with its connection."""
        self._reader.drop_asked()


class Ahead:
    """The events of each page after `since` (SyncReader.after), read one page ahead."""

    def __init__(self, reader: SyncReader, since: int, log: Log, join_limit: float) -> None:
        self._reader = reader
        self._since = since
        self._log = log
        self._join_limit = join_limit
        self._handed: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=1)
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="prismer-rt-log-ahead")
        self._thread.daemon = True
        self._thread.start()

    def __iter__(self) -> Iterator[list[JSON]]:
        while True:
            signals.check()  # a safe point: the stop's exception, in the main thread
            kind, value = self._take()
            if kind == _PAGE:
                yield value  # type: ignore[misc]
            elif kind == _END:
                return
            else:
                signals.check()  # a page cut by a stop: the stop, not the cut, is said
                assert isinstance(value, Exception)
                raise value

    def _take(self) -> tuple[int, object]:
        while True:
            try:
                return self._handed.get(timeout=TICK)
            except queue.Empty:
                signals.check()
                if not self._thread.is_alive() and self._handed.empty():
                    return _FAILED, ConnectError("the event log's reader ended unexpectedly")

    def _read(self) -> None:
        """The thread: each page in turn, handed over; then the end, or the failure."""
        try:
            for events in self._reader.after(self._since):
                if not self._hand(_PAGE, events) or self._stop:
                    return
        except Exception as exc:  # noqa: BLE001 - handed over to the main thread, raised there
            self._hand(_FAILED, exc)
            return
        self._hand(_END, None)

    def _hand(self, kind: int, value: object) -> bool:
        """Hand one item over, waiting while the last one is still there; False once closed."""
        while not self._stop:
            try:
                self._handed.put((kind, value), timeout=TICK)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """End the thread: no more pages are read, and the one under way is cut."""
        self._stop = True
        with contextlib.suppress(queue.Empty):  # a page waiting to be handed over goes now
            self._handed.get_nowait()
        thread, limit = self._thread, time.monotonic() + self._join_limit
        while thread.is_alive() and time.monotonic() < limit:
            self._reader.wake()  # a page under way ends now (a no-op between pages)
            thread.join(0.05)
        if thread.is_alive():
            self._log.warning("the event log's reader did not stop in time; leaving it behind")
