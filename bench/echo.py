"""The server dialect's answer to `message.send`, for the send sections: every message is echoed
back to its sender as `message.new`, as the real server broadcasts it to the room, the sender
included (docs/protocol.md). That echo is what `prismer-rt send` waits for before it writes the
next message of the same conversation, so a run to one conversation costs a round trip per
message, and a run over many conversations pipelines.

The echo keeps the sent payload as it came (so `metadata._idempotencyKey`, which the client
matches on) and adds an `id` and the sender (the user of the `authenticated` hello). A `ping`
is answered with its `pong`. The frames are parsed by hand, as the rest of the server: the
payload is cut out of the client's envelope, never decoded.

While it answers, it checks what the send sections count on: each `message.send` once (by its
idempotency key), and each conversation's messages in input order (the content's number,
`bench message NNNNNN`, grows within a conversation).
"""

from __future__ import annotations

import re
import struct
import time

from events import SYNC_USER
from wire import CLOSE_1000, frame_head, ws_frame

# The envelope as `prismer-rt send` (the stdin line's object as the payload's start, fields in
# this order) and the send sections' websocat file write it: the payload object's inside is
# what the echo keeps.
SEND = b'{"type":"message.send","payload":{'
REQUEST_ID = re.compile(rb'"requestId":"([^"]*)"')
KEY = re.compile(rb'"_idempotencyKey":"([^"]*)"')
ORDER = re.compile(rb'"conversationId":"([^"]*)","content":"bench message (\d+)')
_ZEROS = bytes(14)
_HEAD16 = struct.Struct("!BBH").pack
_ECHO_HEAD = b'{"type":"message.new","payload":{"id":"bench-%d","senderId":"' + (
    SYNC_USER.encode() + b'",'
)
_ECHO_TAIL = b',"timestamp":1735689600000}'


class Echo:
    """The server side of one server-dialect send connection: feed it what the client wrote,
    write back what it returns.

    Per chunk read, not per frame, where it can: the frames' heads are walked in Python, but
    the unmasking is one XOR over every complete frame of the chunk (the heads XORed with
    zeros), the echo is cut out of the unmasked bytes, and the keys and conversations are found
    by regular expressions over the whole chunk. It reports the time it spent (`busy_ns`), so a
    run can tell when the server, not the client, set the pace."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.texts = 0  # text frames
        self.sends = 0  # message.send frames, each echoed
        self.keys: set[bytes] = set()
        self.keyed = 0  # idempotency keys seen, repeated ones included
        self.disorder = 0  # messages that came before an earlier one of their conversation
        self.last: dict[bytes, int] = {}  # conversation -> number of its latest message
        self.closed = False
        self.t_last = 0
        self.busy = 0  # ns spent in feed(): near the run's time, the server was the bottleneck

    def feed(self, data: bytes) -> bytes:
        """Take the client's bytes; return the frames to write back (echoes, pongs, close)."""
        started = time.perf_counter_ns()
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        keystream: list[bytes] = []
        frames: list[tuple[int, int, int]] = []  # (opcode, start, stop) of each payload
        while True:
            head, n = frame_head(buf, pos, end)
            if not head:
                break
            if buf[pos + 1] & 0x80:
                keystream.append(_ZEROS[:head])
                mask = bytes(buf[pos + head - 4 : pos + head])
                keystream.append((mask * ((n >> 2) + 1))[:n])
            else:
                keystream.append(bytes(head + n))
            opcode = buf[pos] & 0x0F
            frames.append((opcode, pos + head, pos + head + n))
            pos += head + n
            if opcode == 8:
                break
        if not pos:
            return b""
        key = b"".join(keystream)
        text = (int.from_bytes(buf[:pos], "big") ^ int.from_bytes(key, "big")).to_bytes(pos, "big")
        del buf[:pos]
        out = self._answers(text, frames)
        self._check(text)
        answer = b"".join(out)
        self.t_last = time.perf_counter_ns()
        self.busy += self.t_last - started
        return answer

    def _answers(self, text: bytes, frames: list[tuple[int, int, int]]) -> list[bytes]:
        """The echo of each message.send frame, the pong of each ping, the close's answer."""
        head, tail, number, skip = _ECHO_HEAD, _ECHO_TAIL, self.sends, len(SEND)
        frame16, startswith, rfind = _HEAD16, text.startswith, text.rfind
        out = []
        for opcode, start, stop in frames:
            if opcode == 1:
                self.texts += 1
                if startswith(SEND, start):
                    cut = rfind(b',"requestId"', start, stop)
                    number += 1
                    echo = head % number + text[start + skip : cut if cut > 0 else stop - 1] + tail
                    size = len(echo)
                    out.append(
                        frame16(0x81, 126, size) + echo if size < 0x10000 else ws_frame(echo)
                    )
                elif startswith(b'{"type":"ping"', start):
                    request = REQUEST_ID.search(text, start, stop)
                    rid = request.group(1) if request else b""
                    out.append(ws_frame(b'{"type":"pong","payload":{},"requestId":"%s"}' % rid))
            elif opcode == 8:
                self.closed = True
                out.append(CLOSE_1000)
            elif opcode == 9:  # a WebSocket ping: its pong
                out.append(ws_frame(text[start:stop], 10))
        self.sends = number
        return out

    def _check(self, text: bytes) -> None:
        """Each message once (by its key), each conversation's messages in input order."""
        keys = KEY.findall(text)
        self.keys.update(keys)
        self.keyed += len(keys)
        last = self.last
        for conversation, seen in ORDER.findall(text):
            value = int(seen)
            if last.get(conversation, -1) >= value:
                self.disorder += 1
            last[conversation] = value

    def report(self) -> dict[str, int]:
        """What the end record of the connection says."""
        return {
            "frames_in": self.texts,
            "echoed": self.sends,
            "keys": len(self.keys),
            "unkeyed": self.sends - self.keyed,
            "disorder": self.disorder,
            "conversations": len(self.last),
            "t_last_in": self.t_last,
            "busy_ns": self.busy,
        }
