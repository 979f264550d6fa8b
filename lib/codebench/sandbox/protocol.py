"""Length-prefixed frames between host, worker and sample child. Standard library only.

A frame is a 4-byte big-endian length followed by that many bytes. Every message is a JSON
header frame, optionally followed by one raw payload frame when the header has ``"n": 1``
(so payload bytes are never spliced into a header). Readers enforce a size cap before
allocating, and `FrameReader` reassembles frames from non-blocking reads.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_LEN = struct.Struct(">I")
MAX_HEADER = 1 << 20
# Bytes asked for per read() of a message stream: below glibc's mmap threshold (128 KiB), so
# the buffer comes from the heap. A 1 MiB read buffer was an mmap, a shrinking mremap and an
# munmap (with a TLB shootdown across CPUs) for every message, in the host, the worker and
# the sample; larger messages simply take several reads.
READ_CHUNK = 1 << 16


class ProtocolError(RuntimeError):
    """A peer sent something that is not a valid frame (or closed mid-frame)."""


def pack(body: bytes) -> bytes:
    """Prefix `body` with its length."""
    return _LEN.pack(len(body)) + body


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to a blocking fd."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send(fd: int, header: dict[str, Any], payload: bytes | None = None) -> None:
    """Send a header (and an optional payload) as frames on a blocking fd."""
    if payload is not None:
        header = dict(header, n=1)
    data = pack(json.dumps(header, separators=(",", ":")).encode())
    if payload is not None:
        data += pack(payload)
    write_all(fd, data)


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int) -> bytes:
    """Read one frame from a blocking fd (EOFError on a clean close)."""
    (size,) = _LEN.unpack(_read_exact(fd, 4))
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds {max_bytes}")
    return _read_exact(fd, size)


def recv(fd: int, max_payload: int) -> tuple[dict[str, Any], bytes | None]:
    """Read a header and its payload, if any, from a blocking fd."""
    try:
        header = json.loads(read_frame(fd, MAX_HEADER))
    except ValueError as e:
        raise ProtocolError(f"bad header: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not an object")
    payload = read_frame(fd, max_payload) if header.get("n") == 1 else None
    return header, payload


class FrameReader:
    """Incremental frame parser for non-blocking reads with a per-frame size cap."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.too_large = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the frames now complete (sets too_large instead of raising)."""
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (size,) = _LEN.unpack_from(self.buf)
            if size > self.max_bytes:
                self.too_large = True
                self.buf.clear()
                break
            if len(self.buf) < 4 + size:
                break
            out.append(bytes(self.buf[4 : 4 + size]))
            del self.buf[: 4 + size]
        return out


class Channel:
    """Buffered blocking receiver of header(+payload) messages: one read per message."""

    def __init__(self, fd: int, max_payload: int) -> None:
        self.fd = fd
        self.reader = FrameReader(max(MAX_HEADER, max_payload))
        self.frames: list[bytes] = []

    def _frame(self) -> bytes:
        while not self.frames:
            data = os.read(self.fd, READ_CHUNK)
            if not data:
                raise EOFError("peer closed the channel")
            self.frames += self.reader.feed(data)
            if self.reader.too_large:
                raise ProtocolError("frame too large")
        return self.frames.pop(0)

    def recv(self) -> tuple[dict[str, Any], bytes | None]:
        """The next header and its payload, if any."""
        try:
            header = json.loads(self._frame())
        except ValueError as e:
            raise ProtocolError(f"bad header: {e}") from None
        if not isinstance(header, dict):
            raise ProtocolError("header is not an object")
        return header, (self._frame() if header.get("n") == 1 else None)
