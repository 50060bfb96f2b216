"""Reading RFC 6455 WebSocket frames on the ``listen`` hot path (the frames the client writes:
wsencode.py).

Why this module exists: ``prismer-rt listen`` must take at least 100,000
events/s (JSON text frames of about 250 bytes) on a 2-core machine.
websocket-client's own frame reader manages about 8,000 frames/s with its
default settings (pure-Python UTF-8 validation and three ``recv()`` calls per
frame) and about 40,000/s with validation turned off, while a minimal frame
reader in Python reached 164,000/s.  websocket-client therefore still opens the
connection (TLS, proxies, the opening handshake); once the handshake is done,
:class:`FrameReader` reads the server's frames straight from its socket.

:class:`FrameReader` receives with ``recv_into`` into one preallocated buffer
and parses every complete frame already buffered before it receives again.  It
does not validate UTF-8 in text messages: the caller hands the payload to a
JSON parser, which rejects bad UTF-8 anyway.
"""

from __future__ import annotations

import struct
from typing import Protocol

__all__ = [
    "DEFAULT_BUFSIZE",
    "DEFAULT_MAX_SIZE",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ConnectionClosedError",
    "FrameError",
    "FrameReader",
    "decode_close",
]

OP_CONTINUATION = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10

DEFAULT_BUFSIZE = 262144
DEFAULT_MAX_SIZE = 64 * 1024 * 1024

# The longest header of an unmasked frame: 2 bytes + a 64-bit length.
_MAX_HEADER = 10

_unpack_u16 = struct.Struct("!H").unpack_from
_unpack_u64 = struct.Struct("!Q").unpack_from
# The 7-bit length field's two escapes: the header's size, and how to read the real length.
_EXTENDED_LENGTH = {126: (4, _unpack_u16), 127: (10, _unpack_u64)}


class Receiver(Protocol):
    """What the reader reads from: a socket, or anything with its recv_into."""

    def recv_into(self, buffer: memoryview, /) -> int: ...


class FrameError(Exception):
    """The server broke the WebSocket framing rules (RFC 6455, section 5)."""


class ConnectionClosedError(Exception):
    """The socket reached end of file (the peer closed the TCP connection)."""


class FrameReader:
    """Read WebSocket messages sent by a server from a connected socket.

    ``read()`` returns one complete message per call; ``buffered()`` says
    whether the next ``read()`` can finish without receiving.  Socket
    timeouts (and any other exception raised by ``recv_into``) propagate and
    leave the reader intact, so ``read()`` may simply be called again later.
    """

    __slots__ = (
        "_buf",
        "_bufsize",
        "_end",
        "_frag_op",
        "_frag_parts",
        "_frag_size",
        "_home_buf",
        "_max_size",
        "_mv",
        "_recv_into",
        "_start",
    )

    def __init__(
        self,
        sock: Receiver,
        *,
        bufsize: int = DEFAULT_BUFSIZE,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if bufsize < 2 * _MAX_HEADER:
            raise ValueError(f"bufsize must be at least {2 * _MAX_HEADER}, not {bufsize}")
        if max_size < 125:
            raise ValueError(f"max_size must be at least 125, not {max_size}")
        self._recv_into = sock.recv_into
        self._bufsize = bufsize
        self._max_size = max_size
        # _home_buf is the preallocated buffer; _buf is the one in use, which is
        # _home_buf except while a frame larger than bufsize is being received.
        self._home_buf = bytearray(bufsize)
        self._buf = self._home_buf
        self._mv = memoryview(self._buf)
        # Unconsumed bytes are _buf[_start:_end].
        self._start = 0
        self._end = 0
        # The fragmented message being reassembled: its opcode (0 when there
        # is none), the payloads received so far and their total length.
        self._frag_op = 0
        self._frag_parts: list[bytes] = []
        self._frag_size = 0

    def read(self) -> tuple[int, bytes]:
        """Return the next message as ``(opcode, payload)``, receiving as needed.

        The opcode is 1 (text), 2 (binary), 8 (close), 9 (ping) or 10 (pong).
        A fragmented message comes back whole, with its first frame's opcode;
        control frames sent between its fragments are returned as they come.
        Raises :class:`FrameError` on a protocol violation and
        :class:`ConnectionClosedError` at end of file.
        """
        while True:
            # Fast path: an unfragmented text or binary frame with a 7-bit or
            # 16-bit length (up to 64 KiB), entirely in the buffer.  A set mask
            # bit makes the length byte >= 128, so masked frames fall through
            # to the checks in _read_slow.  max_size is at least 125, so only
            # 16-bit lengths need checking against it.
            start = self._start
            avail = self._end - start
            if avail > 1 and not self._frag_op:
                buf = self._buf
                b0 = buf[start]
                if b0 == 0x81 or b0 == 0x82:
                    n = buf[start + 1]
                    if n < 126:
                        if n + 2 <= avail:
                            start += 2
                            self._start = start + n
                            return b0 & 0x0F, self._mv[start : start + n].tobytes()
                    elif n == 126 and avail > 3:
                        n = buf[start + 2] << 8 | buf[start + 3]
                        if n + 4 <= avail and n <= self._max_size:
                            start += 4
                            self._start = start + n
                            return b0 & 0x0F, self._mv[start : start + n].tobytes()
            message = self._read_slow()
            if message is not None:
                return message

    def read_batch(self) -> tuple[int, list[bytes]]:
        """The next message as ``read()`` returns it, as a list; after a data message, with
        every data frame already buffered that ``read()`` would return next on its fast path.

        Returns ``(opcode, payloads)``: a data opcode (1 or 2; the frames after the first may
        be text or binary alike) with one payload or more, or a control opcode with its one
        payload.  Parsing a whole receive buffer in one loop costs a fraction of one
        ``read()`` call per frame (README "Design notes").
        """
        opcode, payload = self.read()
        payloads = [payload]
        if opcode >= OP_CLOSE or self._frag_op:
            return opcode, payloads
        append = payloads.append
        buf, mv, max_size = self._buf, self._mv, self._max_size
        start, end = self._start, self._end
        # The fast path of read(), in a loop: unfragmented text or binary frames with a 7-bit or
        # 16-bit length, entirely in the buffer; anything else is left to the next read().
        while end - start > 1:
            b0 = buf[start]
            if b0 != 0x81 and b0 != 0x82:
                break
            n = buf[start + 1]
            if n < 126:
                begin = start + 2
            elif n == 126 and end - start > 3:
                n = buf[start + 2] << 8 | buf[start + 3]
                if n > max_size:
                    break
                begin = start + 4
            else:
                break
            stop = begin + n
            if stop > end:
                break
            append(mv[begin:stop].tobytes())
            start = stop
        self._start = start
        return opcode, payloads

    def _read_slow(self) -> tuple[int, bytes] | None:
        """Handle the frame at the buffer's start in full generality.

        Returns a complete message, or None after either consuming a
        non-final fragment or receiving more bytes.
        """
        buf = self._buf
        start = self._start
        avail = self._end - start
        if avail < 2:
            self._fill(2)
            return None
        b0 = buf[start]
        length = buf[start + 1]
        if length & 0x80:
            raise FrameError("the server sent a masked frame")
        if b0 & 0x70:
            raise FrameError(f"reserved bits set in frame header (0x{b0:02x})")
        opcode = b0 & 0x0F
        final = b0 & 0x80
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise FrameError(f"unknown opcode {opcode}")
            if not final:
                raise FrameError(f"fragmented control frame (opcode {opcode})")
            if length > 125:
                raise FrameError(f"control frame (opcode {opcode}) longer than 125 bytes")
        elif opcode > OP_BINARY:
            raise FrameError(f"unknown opcode {opcode}")
        elif opcode == OP_CONTINUATION:
            if not self._frag_op:
                raise FrameError("continuation frame outside a fragmented message")
        elif self._frag_op:
            raise FrameError("new data frame before the fragmented message ended")

        header = 2
        if length > 125:  # a 16-bit (126) or 64-bit (127) length follows
            header, unpack = _EXTENDED_LENGTH[length]
            if avail < header:
                self._fill(header)
                return None
            length = unpack(buf, start + 2)[0]
        if opcode < OP_CLOSE and length > self._max_size - self._frag_size:
            raise FrameError(
                f"message larger than the {self._max_size}-byte limit "
                f"({self._frag_size + length} bytes)"
            )
        total = header + length
        if avail < total:
            self._fill(total)
            return None

        start += header
        payload = self._mv[start : start + length].tobytes()
        self._start = start + length
        if opcode >= OP_CLOSE:
            return opcode, payload
        if opcode:
            if final:
                return opcode, payload
            self._frag_op = opcode
            self._frag_parts = [payload]
            self._frag_size = length
            return None
        self._frag_parts.append(payload)
        self._frag_size += length
        if not final:
            return None
        opcode = self._frag_op
        payload = b"".join(self._frag_parts)
        self._frag_op = 0
        self._frag_parts = []
        self._frag_size = 0
        return opcode, payload

    def _fill(self, need: int) -> None:
        """Receive once, after making room for ``need`` bytes from ``_start``.

        Only ``recv_into`` can raise before the reader's state is consistent
        again, so a timeout loses nothing.
        """
        buf = self._buf
        start = self._start
        end = self._end
        avail = end - start
        cap = len(buf)
        if need > cap or (cap > self._bufsize and need <= self._bufsize):
            # Switch buffers: grow for a frame larger than the buffer (with
            # room for what follows it), or go back to the preallocated one
            # once such a frame has been read.
            new = bytearray(need + self._bufsize) if need > cap else self._home_buf
            new[:avail] = self._mv[start:end]
            self._buf = new
            self._mv = memoryview(new)
            self._start = 0
            self._end = end = avail
        elif avail == 0:
            self._start = self._end = end = 0
        elif start + need > cap:
            # Compact: move the partial frame to the front.  The right-hand
            # side is copied first, so overlapping ranges are safe.
            buf[:avail] = buf[start:end]
            self._start = 0
            self._end = end = avail
        received = self._recv_into(self._mv[end:])
        if not received:
            where = ""
            if avail:
                where = f" in the middle of a frame ({avail} bytes buffered)"
            elif self._frag_op:
                where = " in the middle of a fragmented message"
            raise ConnectionClosedError("connection closed by peer" + where)
        self._end = end + received

    def buffered(self) -> bool:
        """Return True when the next ``read()`` can finish without receiving.

        That is when the buffer holds a complete frame that ends a message
        (an unfragmented or final frame, or a control frame), possibly after
        complete non-final fragments.  A frame the reader will reject also
        counts, because ``read()`` then raises at once.  Call it before
        ``read()`` to decide whether to flush output first.
        """
        buf = self._buf
        pos = self._start
        end = self._end
        while end - pos > 1:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length < 126:
                header = 2
            elif length & 0x80:
                return True
            elif length == 126:
                if end - pos < 4:
                    return False
                header = 4
                length = buf[pos + 2] << 8 | buf[pos + 3]
            else:
                if end - pos < 10:
                    return False
                header = 10
                length = _unpack_u64(buf, pos + 2)[0]
            if b0 & 0x70:
                return True
            pos += header + length
            if pos > end:
                return False
            if b0 & 0x88:
                return True
        return False


def decode_close(payload: bytes) -> tuple[int | None, str]:
    """Split a close frame's payload into ``(code, reason)``.

    An empty payload gives ``(None, "")``.  A reason that is not valid UTF-8
    is decoded with replacement characters, since it is only ever shown.
    Raises :class:`FrameError` for a 1-byte payload.
    """
    if not payload:
        return None, ""
    if len(payload) < 2:
        raise FrameError("close frame payload of 1 byte")
    return _unpack_u16(payload)[0], payload[2:].decode("utf-8", "replace")
