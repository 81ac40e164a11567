"""A minimal HTTP/1.1 SSE client over raw asyncio streams, cheap enough for 10,000 clients.

The load generator must not be the bottleneck: httpx costs tens of microseconds per
chunk, this costs a few. It speaks only what the benchmark needs: one request per
connection, a chunked (or close-delimited) `text/event-stream` response, frames
split on blank lines. Every frame is stamped with the time its bytes arrived.
"""

import asyncio
import socket
import time
from collections.abc import AsyncIterator

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


class SseConnection:
    """One SSE request; iterate `frames()` until the server closes the response."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunked: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.chunked = chunked

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
        try:
            writer.write(_request(method, host, port, path, body))
            head = await reader.readuntil(b"\r\n\r\n")
        except BaseException:
            writer.close()
            raise
        status = head.split(b" ", 2)[1]
        if status != b"200":
            writer.close()
            raise WireError(f"{method} {path}: HTTP {status.decode()}")
        return cls(reader, writer, b"transfer-encoding: chunked" in head.lower())

    async def _chunks(self) -> AsyncIterator[bytes]:
        reader = self.reader
        while True:
            if self.chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                yield chunk[:-2]
            else:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                yield chunk

    async def frames(self) -> AsyncIterator[Frame]:
        pending = b""
        async for chunk in self._chunks():
            received = time.time()
            pending += chunk
            if b"\n\n" not in pending:
                continue
            *blocks, pending = pending.split(b"\n\n")
            for block in blocks:
                frame = _parse(block, received)
                if frame is not None:
                    yield frame

    def close(self) -> None:
        self.writer.close()
