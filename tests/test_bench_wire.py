"""The benchmark's SSE parser: whatever way the socket cuts the bytes, the same frames.

The load generator parses every response with `SseParser`; a parser that lost or split a
frame at a read boundary would make the benchmark report wrong relay figures.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvloop

from spool.cli.bench.clients import Spec, run_group
from spool.cli.bench.wire import Frame, SseParser, WireError, follow

pytestmark = pytest.mark.unit

EVENTS = [
    b"retry: 1000\n\n",
    b'id: 1-0\nevent: job.started\ndata: {"ts":1}\n\n',
    b'id: 1-1\nevent: text.delta\ndata: {"delta":"a\\r\\n"}\n\n',
    b": ping\n\n",
    b'id: 2-0\nevent: job.completed\ndata: {"ts":2}\n\n',
]
EXPECTED = [
    (b"1-0", b"job.started", b'{"ts":1}'),
    (b"1-1", b"text.delta", b'{"delta":"a\\r\\n"}'),
    (b"2-0", b"job.completed", b'{"ts":2}'),
]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"


def chunked() -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS[:3])
    body += b"%x;ext=1\r\n%s\r\n" % (len(EVENTS[3] + EVENTS[4]), EVENTS[3] + EVENTS[4])
    return HEAD + b"transfer-encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


def parsed(frames: list[Frame]) -> list[tuple[bytes, bytes, bytes]]:
    return [(f.id, f.event, f.data) for f in frames]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_a_chunked_response_cut_anywhere_gives_the_same_frames(size: int) -> None:
    raw, parser, frames = chunked(), SseParser(), []
    for i in range(0, len(raw), size):
        frames += parser.feed(raw[i : i + size], received=1.0)
    assert parser.status == b"200"
    assert parser.chunked
    assert parser.ended
    assert parsed(frames) == EXPECTED


def test_reads_of_one_chunk_each_give_the_same_frames() -> None:
    """A server writes one chunk per event, so most reads are one chunk holding one frame:
    the parser's shortcut for them must agree with its general path, and leave a chunk of
    two frames to it."""
    pieces = [EVENTS[0], EVENTS[1] + EVENTS[2], *EVENTS[3:]]
    parser = SseParser()
    frames = parser.feed(HEAD + b"transfer-encoding: chunked\r\n\r\n", received=1.0)
    for piece in pieces:
        frames += parser.feed(b"%x\r\n%s\r\n" % (len(piece), piece), received=1.0)
    frames += parser.feed(b"0\r\n\r\n", received=1.0)
    assert parser.ended
    assert parsed(frames) == EXPECTED


def test_a_close_delimited_response_is_read_to_the_end() -> None:
    parser = SseParser()
    frames = parser.feed(HEAD + b"\r\n" + b"".join(EVENTS[:2]), 1.0)
    frames += parser.feed(b"".join(EVENTS[2:]), 2.0)
    assert parsed(frames) == EXPECTED
    assert not parser.chunked
    assert not parser.ended
    assert [f.received for f in frames] == [1.0, 2.0, 2.0]


@contextlib.asynccontextmanager
async def answering(response: bytes) -> AsyncIterator[int]:
    """A server on a free port that answers every request with `response`; its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_follow_reads_until_the_callback_has_enough() -> None:
    got: list[Frame] = []
    heads = []

    def on_frames(frames: list[Frame]) -> bool:
        got.extend(frames)
        return any(f.event == b"text.delta" for f in got)

    async with answering(chunked()) as port:
        await follow("127.0.0.1", port, "/", on_frames, on_head=lambda: heads.append(1))
    assert heads == [1]
    assert parsed(got)[:2] == EXPECTED[:2]


async def test_follow_refuses_a_non_200_answer() -> None:
    refusal = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"
    async with answering(refusal) as port:
        with pytest.raises(WireError, match="429"):
            await follow("127.0.0.1", port, "/", lambda frames: False)


def test_follow_runs_on_uvloop() -> None:
    """The generator processes run uvloop, whose transports are not asyncio's classes."""

    async def main() -> list[Frame]:
        got: list[Frame] = []
        async with answering(chunked()) as port:
            await follow("127.0.0.1", port, "/", lambda frames: got.extend(frames) is not None)
        return got

    assert parsed(uvloop.run(main())) == EXPECTED


def terminal_response() -> bytes:
    frame = b'id: 3-0\nevent: job.completed\ndata: {"ts":3}\n\n'
    return HEAD + b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(frame), frame)


@contextlib.asynccontextmanager
async def holding_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that answers `/ok` with a job's end and keeps the connection open until the
    client closes it (recording the path then), `/probe` at once, anything else with 500."""
    closed: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1]
        if path == b"/ok":
            writer.write(terminal_response())
            await writer.drain()
            await reader.read()  # until the client closes
            closed.append(path)
        elif path == b"/probe":
            writer.write(chunked())
        else:
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], closed


async def test_a_lingering_client_keeps_its_connection_until_it_may_leave() -> None:
    had_enough, may_leave = asyncio.Event(), asyncio.Event()

    async def linger() -> None:
        had_enough.set()
        await may_leave.wait()

    async with holding_server() as (port, closed):
        client = asyncio.create_task(
            follow("127.0.0.1", port, "/ok", lambda frames: True, linger=linger)
        )
        await had_enough.wait()
        # a whole exchange on another connection: the server has seen any close by now
        await follow("127.0.0.1", port, "/probe", lambda frames: False)
        assert closed == []
        may_leave.set()
        await client
        await follow("127.0.0.1", port, "/probe", lambda frames: False)
        assert closed == [b"/ok"]


async def test_lingering_clients_leave_together_even_when_one_fails() -> None:
    specs = [Spec("GET", "/ok", stop_after=1, linger=True), Spec("GET", "/bad", linger=True)]
    async with holding_server() as (port, closed):
        async with asyncio.timeout(10):  # a departure that waited for the failed one hangs
            results = await run_group("127.0.0.1", port, specs, [0] * 5, 10, 10)
        await follow("127.0.0.1", port, "/probe", lambda frames: False)
    assert [r.events for r in results] == [1, 0]
    assert "500" in results[1].error
    assert closed == [b"/ok"]
