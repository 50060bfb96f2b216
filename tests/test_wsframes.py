"""Tests for prismer_cli.transport.wsframes: the RFC 6455 frame reader and encoders."""

from __future__ import annotations

import random
import socket
import threading
from collections import deque
from collections.abc import Iterator

import pytest

from prismer_cli.transport.wsencode import (
    encode_close,
    encode_frame,
    encode_text_frames,
    frame_size,
)
from prismer_cli.transport.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionClosedError,
    FrameError,
    FrameReader,
    decode_close,
)

Message = tuple[int, bytes]
TIMEOUT = object()


def naive_mask(key: bytes, data: bytes) -> bytes:
    """Mask or unmask ``data`` byte by byte, exactly as RFC 6455 5.3 describes."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    length_bits: int | None = None,
    mask: bytes | None = None,
) -> bytes:
    """Build one frame the slow, obvious way (a server frame unless ``mask``)."""
    n = len(payload)
    if length_bits is None:
        length_bits = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if mask else 0
    if length_bits == 7:
        head = bytes([b0, mask_bit | n])
    elif length_bits == 16:
        head = bytes([b0, mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mask_bit | 127]) + n.to_bytes(8, "big")
    if mask:
        return head + mask + naive_mask(mask, payload)
    return head + payload


def parse_client_frame(data: bytes) -> tuple[int, int, bytes, bytes]:
    """Decode one masked client frame: (first byte, header length, key, payload)."""
    assert data[1] & 0x80, "client frames must be masked"
    n = data[1] & 0x7F
    pos = 2
    if n == 126:
        n = int.from_bytes(data[2:4], "big")
        pos = 4
    elif n == 127:
        n = int.from_bytes(data[2:10], "big")
        pos = 10
    key = data[pos : pos + 4]
    payload = data[pos + 4 :]
    assert len(payload) == n
    return data[0], pos, key, naive_mask(key, payload)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected socket pair: (server side that sends, client side that reads)."""
    server, client = socket.socketpair()
    client.settimeout(5)
    server.settimeout(5)
    yield server, client
    server.close()
    client.close()


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` from a thread, so payloads larger than the socket buffer work."""
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def read_until_timeout(reader: FrameReader) -> list[Message]:
    """Read messages until the socket times out."""
    out: list[Message] = []
    while True:
        try:
            out.append(reader.read())
        except TimeoutError:
            return out


class ScriptedSocket:
    """A stand-in socket whose recv_into hands out given pieces, with timeouts between."""

    def __init__(self, pieces: list[object]) -> None:
        self.pieces: deque[object] = deque(pieces)

    def recv_into(self, buf: memoryview) -> int:
        if not self.pieces:
            return 0
        item = self.pieces[0]
        if item is TIMEOUT:
            self.pieces.popleft()
            raise TimeoutError("timed out")
        assert isinstance(item, bytes)
        n = min(len(buf), len(item))
        buf[:n] = item[:n]
        if n == len(item):
            self.pieces.popleft()
        else:
            self.pieces[0] = item[n:]
        return n


def read_script(pieces: list[object], **kwargs: int) -> list[Message]:
    """Read every message from a ScriptedSocket, retrying after each timeout."""
    reader = FrameReader(ScriptedSocket(pieces), **kwargs)
    out: list[Message] = []
    while True:
        try:
            out.append(reader.read())
        except TimeoutError:
            continue
        except ConnectionClosedError:
            return out


# -- lengths ---------------------------------------------------------------

LENGTHS = [0, 1, 2, 100, 125, 126, 127, 250, 1000, 65535, 65536, 70000, 300_000]


@pytest.mark.parametrize("bufsize", [20, 4096, 262144])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
@pytest.mark.parametrize("length", LENGTHS)
def test_every_length_class(
    pair: tuple[socket.socket, socket.socket], bufsize: int, opcode: int, length: int
) -> None:
    """A frame of each length class (7-, 16-, 64-bit) and buffer size reads back intact."""
    server, client = pair
    payload = bytes(random.Random(length).randrange(256) for _ in range(min(length, 997)))
    payload = (payload * (length // 997 + 1))[:length]
    after = frame(OP_TEXT, b"after")
    thread = send_in_background(server, frame(opcode, payload) + after)
    reader = FrameReader(client, bufsize=bufsize)
    assert reader.read() == (opcode, payload)
    assert reader.read() == (OP_TEXT, b"after")
    thread.join()


@pytest.mark.parametrize(
    ("length_bits", "length"),
    [(16, 0), (16, 5), (64, 0), (64, 5), (64, 125), (64, 126), (16, 125)],
)
def test_non_minimal_length_encodings(
    pair: tuple[socket.socket, socket.socket], length_bits: int, length: int
) -> None:
    """Lengths written with more bytes than needed are accepted."""
    server, client = pair
    payload = b"y" * length
    server.sendall(frame(OP_TEXT, payload, length_bits=length_bits) * 2)
    reader = FrameReader(client)
    assert reader.read() == (OP_TEXT, payload)
    assert reader.read() == (OP_TEXT, payload)


def test_many_small_frames_in_one_recv(pair: tuple[socket.socket, socket.socket]) -> None:
    """Many frames delivered at once are all parsed, in order."""
    server, client = pair
    payloads = [b"%d" % i * (i % 300) for i in range(2000)]
    thread = send_in_background(server, b"".join(frame(OP_TEXT, p) for p in payloads))
    reader = FrameReader(client, bufsize=4096)
    assert [reader.read() for _ in payloads] == [(OP_TEXT, p) for p in payloads]
    thread.join()


def test_large_frame_then_small_frames(pair: tuple[socket.socket, socket.socket]) -> None:
    """A frame larger than the buffer is read, and reading goes on normally afterwards."""
    server, client = pair
    big = bytes(range(256)) * 1000
    small = [b"a" * n for n in (0, 10, 125, 126, 200)]
    blob = frame(OP_TEXT, b"x") + frame(OP_BINARY, big) + b"".join(frame(OP_TEXT, s) for s in small)
    thread = send_in_background(server, blob * 2)
    reader = FrameReader(client, bufsize=64)
    for _ in range(2):
        assert reader.read() == (OP_TEXT, b"x")
        assert reader.read() == (OP_BINARY, big)
        assert [reader.read() for _ in small] == [(OP_TEXT, s) for s in small]
    thread.join()


# -- fragmentation and control frames ----------------------------------------

FRAGMENT_CASES = [
    (
        "text in three fragments",
        [
            frame(OP_TEXT, b"Hel", fin=False),
            frame(OP_CONTINUATION, b"lo, ", fin=False),
            frame(OP_CONTINUATION, b"world"),
        ],
        [(OP_TEXT, b"Hello, world")],
    ),
    (
        "binary in two fragments",
        [frame(OP_BINARY, b"\x00\x01", fin=False), frame(OP_CONTINUATION, b"\xff")],
        [(OP_BINARY, b"\x00\x01\xff")],
    ),
    (
        "empty fragments",
        [
            frame(OP_TEXT, b"", fin=False),
            frame(OP_CONTINUATION, b"", fin=False),
            frame(OP_CONTINUATION, b""),
        ],
        [(OP_TEXT, b"")],
    ),
    (
        "ping between fragments comes first",
        [
            frame(OP_TEXT, b"ab", fin=False),
            frame(OP_PING, b"p1"),
            frame(OP_CONTINUATION, b"cd", fin=False),
            frame(OP_PONG, b"p2"),
            frame(OP_CONTINUATION, b"ef"),
        ],
        [(OP_PING, b"p1"), (OP_PONG, b"p2"), (OP_TEXT, b"abcdef")],
    ),
    (
        "close between fragments",
        [
            frame(OP_BINARY, b"ab", fin=False),
            frame(OP_CLOSE, b"\x03\xe8bye"),
        ],
        [(OP_CLOSE, b"\x03\xe8bye")],
    ),
    (
        "large fragments with 16- and 64-bit lengths",
        [
            frame(OP_TEXT, b"a" * 300, fin=False),
            frame(OP_PING, b""),
            frame(OP_CONTINUATION, b"b" * 70000),
        ],
        [(OP_PING, b""), (OP_TEXT, b"a" * 300 + b"b" * 70000)],
    ),
    (
        "messages after a fragmented one",
        [
            frame(OP_TEXT, b"a", fin=False),
            frame(OP_CONTINUATION, b"b"),
            frame(OP_TEXT, b"c"),
            frame(OP_BINARY, b"d" * 200),
        ],
        [(OP_TEXT, b"ab"), (OP_TEXT, b"c"), (OP_BINARY, b"d" * 200)],
    ),
]


@pytest.mark.parametrize(
    ("frames", "expected"), [c[1:] for c in FRAGMENT_CASES], ids=[c[0] for c in FRAGMENT_CASES]
)
def test_fragmentation(
    pair: tuple[socket.socket, socket.socket], frames: list[bytes], expected: list[Message]
) -> None:
    """Fragments are reassembled; control frames between them are returned at once."""
    server, client = pair
    thread = send_in_background(server, b"".join(frames))
    reader = FrameReader(client, bufsize=1024)
    assert [reader.read() for _ in expected] == expected
    thread.join()


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
@pytest.mark.parametrize("length", [0, 1, 125])
def test_control_frames(
    pair: tuple[socket.socket, socket.socket], opcode: int, length: int
) -> None:
    """Control frames of every allowed length are returned with their opcode."""
    server, client = pair
    payload = bytes(range(length))
    server.sendall(frame(opcode, payload))
    assert FrameReader(client).read() == (opcode, payload)


# -- recv boundaries, timeouts, EOF -----------------------------------------

SPLIT_FRAMES = [
    frame(OP_TEXT, b"hello"),
    frame(OP_TEXT, b"x" * 130),
    frame(OP_PING, b"png"),
    frame(OP_BINARY, b"frag1-", fin=False),
    frame(OP_PONG, b""),
    frame(OP_CONTINUATION, b"frag2"),
    frame(OP_TEXT, b"tiny", length_bits=64),
    frame(OP_TEXT, b""),
    frame(OP_CLOSE, b"\x03\xe8"),
]
SPLIT_BLOB = b"".join(SPLIT_FRAMES)
SPLIT_EXPECTED = [
    (OP_TEXT, b"hello"),
    (OP_TEXT, b"x" * 130),
    (OP_PING, b"png"),
    (OP_PONG, b""),
    (OP_BINARY, b"frag1-frag2"),
    (OP_TEXT, b"tiny"),
    (OP_TEXT, b""),
    (OP_CLOSE, b"\x03\xe8"),
]


@pytest.mark.parametrize("bufsize", [20, 262144])
def test_split_at_every_byte_offset(
    pair: tuple[socket.socket, socket.socket], bufsize: int
) -> None:
    """Sending the stream in two pieces, cut at any byte, yields the same messages."""
    server, client = pair
    client.settimeout(0.002)
    for cut in range(1, len(SPLIT_BLOB)):
        reader = FrameReader(client, bufsize=bufsize)
        server.sendall(SPLIT_BLOB[:cut])
        got = read_until_timeout(reader)
        server.sendall(SPLIT_BLOB[cut:])
        got += read_until_timeout(reader)
        assert got == SPLIT_EXPECTED, cut
        assert not reader.buffered()


@pytest.mark.parametrize("bufsize", [20, 64, 262144])
def test_one_byte_per_recv_with_timeouts(bufsize: int) -> None:
    """One byte per recv, with a timeout before each, yields the same messages."""
    pieces: list[object] = []
    for i in range(len(SPLIT_BLOB)):
        pieces += [TIMEOUT, SPLIT_BLOB[i : i + 1]]
    assert read_script(pieces, bufsize=bufsize) == SPLIT_EXPECTED


def test_timeout_mid_header_then_resume(pair: tuple[socket.socket, socket.socket]) -> None:
    """A timeout inside a 16-bit header leaves the reader able to finish the frame."""
    server, client = pair
    client.settimeout(0.01)
    data = frame(OP_TEXT, b"z" * 300)
    reader = FrameReader(client)
    server.sendall(data[:3])
    with pytest.raises(TimeoutError):
        reader.read()
    assert not reader.buffered()
    server.sendall(data[3:])
    assert reader.read() == (OP_TEXT, b"z" * 300)


@pytest.mark.parametrize("bufsize", [64, 262144])
def test_timeout_mid_payload_then_resume(
    pair: tuple[socket.socket, socket.socket], bufsize: int
) -> None:
    """Timeouts inside a payload (also one larger than the buffer) lose no bytes."""
    server, client = pair
    client.settimeout(0.01)
    payload = bytes(range(256)) * 40
    data = frame(OP_BINARY, payload) + frame(OP_TEXT, b"next")
    reader = FrameReader(client, bufsize=bufsize)
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    for piece in pieces[:-1]:
        server.sendall(piece)
        with pytest.raises(TimeoutError):
            reader.read()
        assert not reader.buffered()
    server.sendall(pieces[-1])
    assert reader.read() == (OP_BINARY, payload)
    assert reader.buffered()
    assert reader.read() == (OP_TEXT, b"next")


def test_random_streams_random_pieces_and_timeouts() -> None:
    """Random messages cut into random pieces with random timeouts all read back."""
    rng = random.Random(6455)
    for _ in range(60):
        blob = bytearray()
        expected: list[Message] = []
        for _ in range(rng.randrange(1, 12)):
            opcode = rng.choice([OP_TEXT, OP_BINARY])
            size = rng.choice([0, 5, 125, 126, 250, 1000, 70000]) + rng.randrange(3)
            payload = rng.randbytes(size)
            cuts = sorted(rng.sample(range(size + 1), rng.randrange(min(size + 1, 4))))
            parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
            if len(parts) == 1:
                blob += frame(opcode, payload)
            else:
                for i, part in enumerate(parts):
                    blob += frame(
                        opcode if i == 0 else OP_CONTINUATION, part, fin=i == len(parts) - 1
                    )
                    if i < len(parts) - 1 and rng.random() < 0.5:
                        ping = rng.randbytes(rng.randrange(126))
                        blob += frame(OP_PING, ping)
                        expected.append((OP_PING, ping))
            expected.append((opcode, payload))
        pieces: list[object] = []
        pos = 0
        while pos < len(blob):
            step = rng.choice([1, 2, 3, 7, 100, 5000, 100000])
            pieces.append(bytes(blob[pos : pos + step]))
            if rng.random() < 0.3:
                pieces.append(TIMEOUT)
            pos += step
        bufsize = rng.choice([20, 33, 512, 262144])
        assert read_script(pieces, bufsize=bufsize) == expected


def test_eof_before_any_frame(pair: tuple[socket.socket, socket.socket]) -> None:
    """End of file with nothing buffered raises ConnectionClosedError."""
    server, client = pair
    server.close()
    with pytest.raises(ConnectionClosedError):
        FrameReader(client).read()


def test_eof_mid_frame(pair: tuple[socket.socket, socket.socket]) -> None:
    """End of file inside a frame raises ConnectionClosedError naming the buffered bytes."""
    server, client = pair
    server.sendall(frame(OP_TEXT, b"whole") + frame(OP_TEXT, b"partial")[:4])
    server.close()
    reader = FrameReader(client)
    assert reader.read() == (OP_TEXT, b"whole")
    with pytest.raises(ConnectionClosedError, match="4 bytes buffered"):
        reader.read()


def test_eof_inside_fragmented_message() -> None:
    """End of file between fragments raises ConnectionClosedError."""
    reader = FrameReader(ScriptedSocket([frame(OP_TEXT, b"a", fin=False)]))
    with pytest.raises(ConnectionClosedError, match="fragmented message"):
        reader.read()


def test_exception_classes() -> None:
    """FrameError and ConnectionClosedError are plain Exceptions, not OSErrors."""
    assert not issubclass(ConnectionClosedError, OSError)
    assert not issubclass(FrameError, OSError)
    assert issubclass(ConnectionClosedError, Exception)
    assert issubclass(FrameError, Exception)


# -- protocol violations -------------------------------------------------------

VIOLATIONS = [
    ("masked 7-bit frame", frame(OP_TEXT, b"hi", mask=b"abcd"), "masked"),
    ("masked 16-bit frame", frame(OP_TEXT, b"h" * 200, mask=b"abcd"), "masked"),
    ("masked 64-bit frame", frame(OP_TEXT, b"h" * 70000, mask=b"abcd"), "masked"),
    ("masked control frame", frame(OP_PING, b"", mask=b"abcd"), "masked"),
    ("RSV1", frame(OP_TEXT, b"hi", rsv=4), "reserved bits"),
    ("RSV2", frame(OP_TEXT, b"hi", rsv=2), "reserved bits"),
    ("RSV3", frame(OP_BINARY, b"hi", rsv=1), "reserved bits"),
    ("RSV on control frame", frame(OP_PING, b"", rsv=4), "reserved bits"),
    *[(f"opcode {op}", frame(op, b"x"), "unknown opcode") for op in (3, 4, 5, 6, 7)],
    *[(f"opcode {op}", frame(op, b"x"), "unknown opcode") for op in (11, 12, 13, 14, 15)],
    ("ping of 126 bytes", frame(OP_PING, b"p" * 126), "longer than 125"),
    ("close of 200 bytes", frame(OP_CLOSE, b"c" * 200), "longer than 125"),
    ("pong with 64-bit length", frame(OP_PONG, b"p" * 126, length_bits=64), "longer than 125"),
    ("fragmented ping", frame(OP_PING, b"p", fin=False), "fragmented control"),
    ("fragmented close", frame(OP_CLOSE, b"", fin=False), "fragmented control"),
    ("continuation first", frame(OP_CONTINUATION, b"x"), "continuation frame outside"),
    (
        "text inside a fragmented message",
        frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"),
        "before the fragmented message ended",
    ),
    (
        "binary inside a fragmented message",
        frame(OP_TEXT, b"a", fin=False) + frame(OP_BINARY, b"b", fin=False),
        "before the fragmented message ended",
    ),
    ("frame over max_size", frame(OP_BINARY, b"b" * 1001), "larger than"),
    (
        "fragments over max_size",
        frame(OP_TEXT, b"a" * 600, fin=False) + frame(OP_CONTINUATION, b"b" * 401),
        "larger than",
    ),
    (
        "64-bit length with the top bit set",
        bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big"),
        "larger than",
    ),
    ("oversized frame, header only", bytes([0x82, 127]) + (2**40).to_bytes(8, "big"), "larger"),
]


@pytest.mark.parametrize(
    ("data", "match"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_protocol_violations(
    pair: tuple[socket.socket, socket.socket], data: bytes, match: str
) -> None:
    """Each framing violation raises FrameError, as soon as the header shows it."""
    server, client = pair
    thread = send_in_background(server, data)
    reader = FrameReader(client, max_size=1000)
    with pytest.raises(FrameError, match=match):
        reader.read()
    thread.join()


def test_max_size_boundary(pair: tuple[socket.socket, socket.socket]) -> None:
    """A message of exactly max_size bytes, whole or in fragments, is accepted."""
    server, client = pair
    server.sendall(
        frame(OP_BINARY, b"b" * 1000)
        + frame(OP_TEXT, b"a" * 600, fin=False)
        + frame(OP_PING, b"p" * 125)
        + frame(OP_CONTINUATION, b"c" * 400)
    )
    reader = FrameReader(client, max_size=1000)
    assert reader.read() == (OP_BINARY, b"b" * 1000)
    assert reader.read() == (OP_PING, b"p" * 125)
    assert reader.read() == (OP_TEXT, b"a" * 600 + b"c" * 400)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"bufsize": 19}, "bufsize"), ({"max_size": 124}, "max_size")]
)
def test_constructor_rejects_tiny_limits(
    pair: tuple[socket.socket, socket.socket], kwargs: dict[str, int], match: str
) -> None:
    """A buffer too small for two headers, or a max_size below 125, is refused."""
    with pytest.raises(ValueError, match=match):
        FrameReader(pair[1], **kwargs)


# -- buffered() ------------------------------------------------------------------

BUFFERED_CASES = [
    ("nothing", b"", False),
    ("one byte", frame(OP_TEXT, b"abc")[:1], False),
    ("partial 16-bit header", frame(OP_TEXT, b"a" * 200)[:3], False),
    ("partial 64-bit header", frame(OP_TEXT, b"a" * 70000)[:9], False),
    ("partial payload", frame(OP_TEXT, b"abc")[:4], False),
    ("complete text frame", frame(OP_TEXT, b"abc"), True),
    ("complete empty frame", frame(OP_BINARY, b""), True),
    ("complete 16-bit frame", frame(OP_TEXT, b"a" * 200), True),
    ("complete 64-bit frame", frame(OP_TEXT, b"a" * 10, length_bits=64), True),
    ("complete ping", frame(OP_PING, b"x"), True),
    ("non-final fragment only", frame(OP_TEXT, b"ab", fin=False), False),
    (
        "fragment then ping",
        frame(OP_TEXT, b"ab", fin=False) + frame(OP_PING, b""),
        True,
    ),
    (
        "fragment then final continuation",
        frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONTINUATION, b"cd"),
        True,
    ),
    (
        "fragment then partial continuation",
        frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONTINUATION, b"cd")[:3],
        False,
    ),
    ("masked frame (read raises at once)", frame(OP_TEXT, b"ab", mask=b"abcd")[:2], True),
    ("RSV bits (read raises at once)", frame(OP_TEXT, b"ab", rsv=4), True),
]


@pytest.mark.parametrize(
    ("rest", "expected"), [c[1:] for c in BUFFERED_CASES], ids=[c[0] for c in BUFFERED_CASES]
)
def test_buffered(pair: tuple[socket.socket, socket.socket], rest: bytes, expected: bool) -> None:
    """buffered() is True exactly when read() can finish without receiving."""
    server, client = pair
    server.sendall(frame(OP_TEXT, b"first") + rest)
    reader = FrameReader(client)
    assert not reader.buffered()
    assert reader.read() == (OP_TEXT, b"first")
    assert reader.buffered() is expected


def test_buffered_inside_fragmented_message(pair: tuple[socket.socket, socket.socket]) -> None:
    """buffered() accounts for a fragmented message already partly consumed."""
    server, client = pair
    client.settimeout(0.01)
    server.sendall(
        frame(OP_TEXT, b"a", fin=False)
        + frame(OP_PING, b"")
        + frame(OP_CONTINUATION, b"b", fin=False)
    )
    reader = FrameReader(client)
    assert reader.read() == (OP_PING, b"")
    assert not reader.buffered()
    with pytest.raises(TimeoutError):
        reader.read()
    server.sendall(frame(OP_CONTINUATION, b"c"))
    assert reader.read() == (OP_TEXT, b"abc")


# -- encoding --------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 100_003])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_encode_frame_lengths(opcode: int, length: int) -> None:
    """encode_frame sets FIN, the right length form, and masks like the reference."""
    payload = random.Random(length).randbytes(length)
    key = b"\x12\x34\xab\xcd"
    data = encode_frame(opcode, payload, mask_key=key)
    b0, header, got_key, unmasked = parse_client_frame(data)
    assert b0 == 0x80 | opcode
    assert header == (2 if length < 126 else 4 if length < 65536 else 10)
    assert got_key == key
    assert unmasked == payload
    assert data[header + 4 :] == naive_mask(key, payload)


def test_mask_matches_reference_for_many_lengths_and_keys() -> None:
    """Masking equals the byte-by-byte reference for lengths 0-300 and random keys."""
    rng = random.Random(5)
    for length in range(301):
        key = rng.randbytes(4)
        payload = rng.randbytes(length)
        data = encode_frame(OP_BINARY, payload, mask_key=key)
        assert data[len(data) - length :] == naive_mask(key, payload)
        assert parse_client_frame(data)[3] == payload


def test_text_frames_in_one_go_equal_each_encoded_alone() -> None:
    """encode_text_frames (one XOR over a batch) gives each frame's bytes with its own key,
    in every length class, and frame_size says where each ends."""
    rng = random.Random(7)
    sizes = [0, 1, 3, 4, 5, 125, 126, 127, 236, 65535, 65536, 70_001, *range(0, 300, 7)]
    payloads = [rng.randbytes(n) for n in sizes]
    keys = rng.randbytes(4 * len(payloads))
    data = encode_text_frames(payloads, keys)
    alone = [
        encode_frame(OP_TEXT, p, mask_key=keys[4 * i : 4 * i + 4]) for i, p in enumerate(payloads)
    ]
    assert data == b"".join(alone)
    assert [frame_size(len(p)) for p in payloads] == [len(f) for f in alone]
    assert encode_text_frames([], b"") == b""


@pytest.mark.parametrize("key", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x01"])
def test_mask_edge_keys(key: bytes) -> None:
    """Zero, all-ones and leading-zero keys (and zero bytes in data) mask correctly."""
    payload = b"\x00" * 7 + b"\xff" * 7 + b"\x00"
    data = encode_frame(OP_BINARY, payload, mask_key=key)
    assert data[6:] == naive_mask(key, payload)


def test_encode_frame_random_key() -> None:
    """Without mask_key a fresh random key is used and the frame still round-trips."""
    frames = [encode_frame(OP_TEXT, b"same payload") for _ in range(8)]
    assert len({parse_client_frame(f)[2] for f in frames}) > 1
    assert all(parse_client_frame(f)[3] == b"same payload" for f in frames)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_encode_control_frames(opcode: int) -> None:
    """Control frames up to 125 bytes are encoded with their opcode and FIN."""
    data = encode_frame(opcode, b"c" * 125, mask_key=b"kkkk")
    assert parse_client_frame(data)[:2] == (0x80 | opcode, 2)


@pytest.mark.parametrize(
    ("opcode", "payload", "key", "match"),
    [
        (OP_CONTINUATION, b"x", None, "opcode 0"),
        (3, b"x", None, "opcode 3"),
        (11, b"x", None, "opcode 11"),
        (OP_PING, b"p" * 126, None, "126 bytes"),
        (OP_CLOSE, b"p" * 126, None, "126 bytes"),
        (OP_TEXT, b"x", b"abc", "4 bytes"),
        (OP_TEXT, b"x", b"abcde", "4 bytes"),
    ],
)
def test_encode_frame_rejects(opcode: int, payload: bytes, key: bytes | None, match: str) -> None:
    """Unsendable opcodes, long control payloads and bad mask keys raise ValueError."""
    with pytest.raises(ValueError, match=match):
        encode_frame(opcode, payload, mask_key=key)


# -- close payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "payload"),
    [
        (1000, "", b"\x03\xe8"),
        (1001, "going away", b"\x03\xe9going away"),
        (4000, "bye", b"\x0f\xa0bye"),
        (1011, "d\u00e9j\u00e0 vu \u2713", b"\x03\xf3" + "d\u00e9j\u00e0 vu \u2713".encode()),
        (4999, "r" * 123, b"\x13\x87" + b"r" * 123),
    ],
)
def test_encode_close_round_trip(code: int, reason: str, payload: bytes) -> None:
    """encode_close builds the payload the RFC describes, and decode_close reverses it."""
    b0, _, _, unmasked = parse_client_frame(encode_close(code, reason))
    assert b0 == 0x80 | OP_CLOSE
    assert unmasked == payload
    assert decode_close(unmasked) == (code, reason)


def test_encode_close_default() -> None:
    """encode_close() with no arguments sends code 1000 and no reason."""
    assert parse_client_frame(encode_close())[3] == b"\x03\xe8"


@pytest.mark.parametrize(
    ("code", "reason", "match"),
    [
        (999, "", "999"),
        (5000, "", "5000"),
        (1004, "", "1004"),
        (1005, "", "1005"),
        (1006, "", "1006"),
        (1015, "", "1015"),
        (1000, "r" * 124, "124 bytes"),
        (1000, "\u00e9" * 62, "124 bytes"),
    ],
)
def test_encode_close_rejects(code: int, reason: str, match: str) -> None:
    """Reserved or out-of-range codes and reasons over 123 bytes raise ValueError."""
    with pytest.raises(ValueError, match=match):
        encode_close(code, reason)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", (None, "")),
        (b"\x03\xe8", (1000, "")),
        (b"\x03\xeagoing", (1002, "going")),
        (b"\x0b\xb8\xe2\x9c\x93", (3000, "\u2713")),
        (b"\x03\xe8\xff\xfe", (1000, "\ufffd\ufffd")),
        (b"\x00\x00", (0, "")),
    ],
)
def test_decode_close(payload: bytes, expected: tuple[int | None, str]) -> None:
    """decode_close splits code and reason; bad UTF-8 becomes replacement characters."""
    assert decode_close(payload) == expected


def test_decode_close_one_byte() -> None:
    """A 1-byte close payload is a protocol violation."""
    with pytest.raises(FrameError):
        decode_close(b"\x03")


# -- read_batch --------------------------------------------------------------------------


def read_script_batches(pieces: list[object], **kwargs: int) -> list[list[Message]]:
    """Every batch read_batch returns from a ScriptedSocket, as (opcode, payload) lists: a data
    opcode stands for every data payload of its batch (text and binary alike)."""
    reader = FrameReader(ScriptedSocket(pieces), **kwargs)
    out: list[list[Message]] = []
    while True:
        try:
            opcode, payloads = reader.read_batch()
        except TimeoutError:
            continue
        except ConnectionClosedError:
            return out
        out.append([(opcode, payload) for payload in payloads])


def data_kind(message: Message) -> tuple[str, bytes]:
    return ("data" if message[0] < OP_CLOSE else str(message[0])), message[1]


def test_read_batch_reads_what_read_reads() -> None:
    """Random streams in random pieces: the batches hold the messages read() returns, in
    order; a control frame comes alone; a receive's whole frames come in one batch."""
    rng = random.Random(21)
    for _ in range(200):
        blob = bytearray()
        for _ in range(rng.randrange(1, 30)):
            kind = rng.random()
            if kind < 0.1:
                blob += frame(OP_PING, rng.randbytes(rng.randrange(126)))
            elif kind < 0.15:
                blob += frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONTINUATION, b"cd")
            else:
                size = rng.choice([0, 5, 125, 126, 250, 1000, 70000]) + rng.randrange(3)
                blob += frame(rng.choice([OP_TEXT, OP_BINARY]), rng.randbytes(size))
        pieces: list[object] = []
        pos = 0
        while pos < len(blob):
            step = rng.choice([1, 3, 100, 5000, 100000])
            pieces += [bytes(blob[pos : pos + step]), *([TIMEOUT] if rng.random() < 0.3 else [])]
            pos += step
        bufsize = rng.choice([20, 512, 262144])
        expected = read_script(list(pieces), bufsize=bufsize)
        batches = read_script_batches(pieces, bufsize=bufsize)
        assert [data_kind(m) for b in batches for m in b] == [data_kind(m) for m in expected]
        assert all(len(b) == 1 for b in batches if b[0][0] >= OP_CLOSE)


def test_read_batch_takes_every_whole_data_frame_buffered() -> None:
    """One receive of several frames: one batch, up to what read() must handle itself (a
    control frame, a fragment, a 64-bit length, a frame over max_size, an incomplete frame)."""
    frames = [frame(OP_TEXT, b"%d" % i) for i in range(5)] + [frame(OP_BINARY, b"b" * 140)]
    payloads = [b"0", b"1", b"2", b"3", b"4", b"b" * 140]
    for stop, then in [
        (frame(OP_PING, b"p"), (OP_PING, [b"p"])),
        (frame(OP_TEXT, b"x", fin=False) + frame(OP_CONTINUATION, b"y"), (OP_TEXT, [b"xy"])),
        (frame(OP_TEXT, b"l", length_bits=64), (OP_TEXT, [b"l"])),
        (frame(OP_TEXT, b"m" * 151), None),  # over max_size: read() refuses it
    ]:
        reader = FrameReader(ScriptedSocket([b"".join(frames) + stop]), max_size=150)
        assert reader.read_batch() == (OP_TEXT, payloads)
        if then is None:
            with pytest.raises(FrameError):
                reader.read_batch()
        else:
            assert reader.read_batch() == then
    reader = FrameReader(ScriptedSocket([b"".join(frames[:3]), b"".join(frames[3:])[:-1]]))
    assert reader.read_batch() == (OP_TEXT, payloads[:3])
    assert reader.read_batch() == (OP_TEXT, payloads[3:5])  # the last frame is incomplete
