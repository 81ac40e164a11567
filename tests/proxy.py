"""A loopback TCP proxy that cuts connections at chosen byte counts, to force drops.

Connection n (in accept order) is cut after `cuts[n]` bytes from the server have
reached the client (`then` for connections past the list; None = never): both sockets
are aborted, so the client sees the server vanish mid-response, wherever that falls
(inside headers, inside a chunk, between two events).
"""

import asyncio
import contextlib

from spool.cli.embedded import free_port


class CuttingProxy:
    def __init__(self, target_port: int, cuts: list[int], then: int | None = None) -> None:
        self.target_port = target_port
        self.cuts = cuts
        self.then = then
        self.port = free_port()
        self.connections = 0
        self.cut = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "CuttingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _limit(self, index: int) -> int | None:
        return self.cuts[index] if index < len(self.cuts) else self.then

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        limit = self._limit(self.connections)
        self.connections += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        down = asyncio.create_task(self._pump(server_r, client_w, limit))
        up = asyncio.create_task(self._pump(client_r, server_w, None))
        try:
            await asyncio.wait([down, up], return_when=asyncio.FIRST_COMPLETED)
            if down.done() and down.result():
                self.cut += 1
        finally:
            for task in (down, up):
                task.cancel()
            await asyncio.gather(down, up, return_exceptions=True)
            for writer in (client_w, server_w):
                writer.transport.abort()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None
    ) -> bool:
        """Copy until EOF (False) or until `limit` bytes went through (True: cut here)."""
        sent = 0
        with contextlib.suppress(ConnectionError):
            while limit is None or sent < limit:
                want = 65536 if limit is None else min(65536, limit - sent)
                data = await reader.read(want)
                if not data:
                    return False
                writer.write(data)
                await writer.drain()
                sent += len(data)
            return True
        return False
