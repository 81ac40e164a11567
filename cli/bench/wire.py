"""A minimal HTTP/1.1 SSE client, cheap enough for 10,000 clients at 50,000 frames/s.

The load generator must not be the bottleneck: httpx costs tens of microseconds per
chunk, asyncio streams with an async generator per layer about ten. Here one
incremental parser (`SseParser`: response head, chunked transfer coding, frames split
on blank lines) is fed whole socket reads, either by an `asyncio.Protocol` that hands
each read's frames to a callback (`follow`, the benchmark's clients: no task wake-up,
no generator per frame) or by `SseConnection` (streams, for tests that iterate frames).
It speaks only what the benchmark needs: one request per connection and a chunked (or
close-delimited) `text/event-stream` response. Every frame is stamped with the time its
bytes arrived.
"""

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import msgspec


class WireError(Exception):
    """The server answered something other than a 200 event stream."""


class Frame(msgspec.Struct, array_like=True):
    received: float  # time.time() when the bytes arrived
    id: bytes
    event: bytes
    data: bytes


def _request(method: str, host: str, port: int, path: str, body: bytes | None) -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: text/event-stream",
        "Connection: close",
    ]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def _parse(block: bytes, received: float) -> Frame | None:
    if block.startswith(b"id: "):  # Spool's own frames: id, event, data, in that order
        lines = block.split(b"\n")
        if (
            len(lines) == 3
            and lines[1].startswith(b"event: ")
            and lines[2].startswith(b"data: ")
            and len(lines[2]) > 6
        ):
            return Frame(received, lines[0][4:], lines[1][7:], lines[2][6:])
    fid = event = data = b""
    for line in block.split(b"\n"):
        name, _, value = line.partition(b": ")
        if name == b"data":
            data = value
        elif name == b"event":
            event = value
        elif name == b"id":
            fid = value
    return Frame(received, fid, event, data) if data else None


def _one_frame(data: bytes) -> bytes | None:
    """The frame's block when `data` is exactly one chunk holding exactly one whole frame
    (what a server writes for one event), else None (the general path then decodes it)."""
    eol = data.find(b"\r\n")
    if not 0 < eol <= 8 or not data.endswith(b"\n\n\r\n"):
        return None
    try:
        size = int(data[:eol], 16)
    except ValueError:  # a chunk extension: the general path
        return None
    end = len(data) - 4  # the frame's blank line, then the chunk's CRLF
    if eol + 4 + size != len(data) or data.find(b"\n\n", eol + 2) != end:
        return None
    return data[eol + 2 : end]


class SseParser:
    """Bytes of one response in, frames out. `status` is set once the head has arrived;
    `ended` once the last chunk has (a close-delimited body ends with the connection)."""

    def __init__(self) -> None:
        self._raw = bytearray()  # not yet decoded: the head, or chunk framing
        self._body = b""  # decoded, not yet a whole frame
        self._left = 0  # bytes of the current chunk still to come, its CRLF included
        self.status: bytes | None = None
        self.chunked = False
        self.ended = False

    def feed(self, data: bytes, received: float) -> list[Frame]:
        if self.status is None:
            self._raw += data
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            head = bytes(self._raw[:end]).lower()
            self.status = head.split(b" ", 2)[1]
            self.chunked = b"transfer-encoding: chunked" in head
            data = bytes(self._raw[end + 4 :])
            self._raw.clear()
        if self.chunked:
            if self._raw or self._left:
                data = self._dechunk(data)
            else:
                one = _one_frame(data) if not self._body else None
                if one is not None:  # the common read: one chunk holding one whole frame
                    frame = _parse(one, received)
                    return [frame] if frame is not None else []
                data = self._whole_chunks(data)
        if not data:
            return []
        blocks = (self._body + data if self._body else data).split(b"\n\n")
        self._body = blocks.pop()  # the start of a frame still to come, if any
        frames = []
        for block in blocks:
            frame = _parse(block, received)
            if frame is not None:
                frames.append(frame)
        return frames

    def _whole_chunks(self, data: bytes) -> bytes:
        """`_dechunk` of a read that starts at a chunk's head (a server writes a chunk at a
        time, so most reads are whole chunks): sliced from `data`, with no buffer; a piece
        left over (a chunk cut by the read) goes to `_dechunk`'s buffer."""
        out: list[bytes] = []
        pos, size_of = 0, len(data)
        while pos < size_of and not self.ended:  # (what follows the last chunk is ignored)
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(data[pos:eol].partition(b";")[0], 16)
            if size == 0:
                self.ended = True
                return b"".join(out)
            end = eol + 2 + size
            if end + 2 > size_of:
                break
            out.append(data[eol + 2 : end])
            pos = end + 2
        if pos < size_of and not self.ended:
            return b"".join(out) + self._dechunk(data[pos:])
        return out[0] if len(out) == 1 else b"".join(out)

    def _dechunk(self, data: bytes) -> bytes:
        raw = self._raw
        raw += data
        out = []
        while raw and not self.ended:
            if self._left == 0:
                eol = raw.find(b"\r\n")
                if eol < 0:
                    break
                size = int(bytes(raw[:eol]).partition(b";")[0], 16)
                del raw[: eol + 2]
                if size == 0:
                    self.ended = True
                    break
                self._left = size + 2
            take = min(self._left, len(raw))
            payload = min(take, self._left - 2)  # the chunk's CRLF is not body
            if payload > 0:
                out.append(bytes(raw[:payload]))
            del raw[:take]
            self._left -= take
        return b"".join(out)


OnFrames = Callable[[list[Frame]], bool]  # True: the client has had enough
Linger = Callable[[], Awaitable[None]]  # once the client has had enough: until it may close


class _Follow(asyncio.Protocol):
    def __init__(
        self,
        request: bytes,
        on_frames: OnFrames,
        on_head: Callable[[], None] | None,
        done: "asyncio.Future[None]",
        lingers: bool = False,
    ) -> None:
        self.request = request
        self.on_frames = on_frames
        self.on_head = on_head
        self.done = done
        self.lingers = lingers  # had enough: the connection stays open, what comes is dropped
        self.parser = SseParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():  # lingering
            return
        parser = self.parser
        had_head = parser.status is not None
        frames = parser.feed(data, time.time())
        if parser.status is None:
            return
        if parser.status != b"200":
            self._finish(WireError(f"HTTP {parser.status.decode()}"))
            return
        if not had_head and self.on_head is not None:
            self.on_head()
        if (frames and self.on_frames(frames)) or parser.ended:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.parser.status is None and exc is None:
            exc = WireError("the server closed the connection before answering")
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)
        if self.transport is not None and not (exc is None and self.lingers):
            self.transport.close()


async def follow(
    host: str,
    port: int,
    path: str,
    on_frames: OnFrames,
    method: str = "GET",
    body: bytes | None = None,
    *,
    on_head: Callable[[], None] | None = None,
    linger: Linger | None = None,
) -> None:
    """Send one request and hand every read's frames to `on_frames` until it returns True,
    the response ends or the connection closes; `on_head` is called once a 200 head is in.
    `linger`: once `on_frames` has had enough, the connection stays open (what else comes
    is dropped) until `linger()` returns, so that clients can leave together."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    request = _request(method, host, port, path, body)
    transport, _ = await loop.create_connection(
        lambda: _Follow(request, on_frames, on_head, done, linger is not None), host, port
    )
    try:
        await done
        if linger is not None:
            await linger()
    finally:
        transport.close()


class SseConnection:
    """One SSE request over asyncio streams; iterate `frames()` until the server closes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: SseParser
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = parser

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        *,
        rcvbuf: int | None = None,
    ) -> "SseConnection":
        """Send the request and read the response head; `rcvbuf` shrinks the socket's
        receive buffer (and the reader's), for a client that reads slowly."""
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
            reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        parser = SseParser()
        try:
            writer.write(_request(method, host, port, path, body))
            parser.feed(await reader.readuntil(b"\r\n\r\n"), time.time())
        except BaseException:
            writer.close()
            raise
        if parser.status != b"200":
            writer.close()
            raise WireError(f"{method} {path}: HTTP {(parser.status or b'?').decode()}")
        return cls(reader, writer, parser)

    async def frames(self) -> AsyncIterator[Frame]:
        parser = self.parser
        while not parser.ended:
            data = await self.reader.read(65536)
            if not data:
                return
            for frame in parser.feed(data, time.time()):
                yield frame

    def close(self) -> None:
        self.writer.close()
