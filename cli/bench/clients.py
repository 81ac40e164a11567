"""SSE clients of the benchmark, run by the thousand in load-generator processes.

A client sends one request, reads the event stream and keeps only numbers: when it
started, when the first `text.delta` arrived, the relay delay of every event (arrival
time minus the `ts` the worker stamped), and the `ts` of its job's start and end.
A generator process runs a group of clients on one event loop and sends the results
back over a pipe; its live counters (connected, events, done) are shared memory that
the parent's progress bar reads.
"""

import asyncio
import contextlib
import gc
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from spool.cli.bench.wire import Frame, follow

TERMINAL = frozenset((b"job.completed", b"job.failed", b"job.cancelled"))
CONNECTED, EVENTS, DONE, FAILED, CPU_US = range(5)  # slots of a generator's shared counters


class Spec(msgspec.Struct, array_like=True):
    """One client: its request, and how many terminal events end it (0: the server does).
    `linger`: once ended, it keeps its connection open until every lingering client of its
    generator has ended too; then they all leave (`Departure`)."""

    method: str
    path: str
    body: bytes | None = None
    stop_after: int = 0
    linger: bool = False


class Result(msgspec.Struct, array_like=True):
    started: float = 0.0  # time.time() before the request was sent
    first_delta: float = 0.0  # arrival of the first text.delta (0: none)
    events: int = 0
    deltas: int = 0
    tokens: int = 0  # whitespace tokens in the deltas (a merged delta carries several)
    relay_ms: list[float] = []  # arrival - ts, per text.delta
    arrivals: list[float] = []  # time.time() of each text.delta's arrival
    arrival_tokens: list[int] = []  # and the tokens it carried
    append_ms: list[float] = []  # Redis's XADD time (the entry id's ms) - ts: worker → Redis
    deliver_ms: list[float] = []  # arrival - the entry id's ms: Redis → API → client
    job_started_ts: int = 0  # the `ts` of job.started
    first_delta_ts: int = 0
    last_delta_ts: int = 0
    terminal_ts: int = 0
    error: str = ""


class _Data(msgspec.Struct):
    ts: int = 0
    delta: str = ""


_decode = msgspec.json.Decoder(_Data).decode


def _record(result: Result, frame: Frame) -> None:
    event, data, received = frame.event, frame.data, frame.received
    result.events += 1
    if event == b"text.delta":
        decoded = _decode(data)
        ts = decoded.ts
        tokens = len(decoded.delta.split())
        result.tokens += tokens
        result.arrival_tokens.append(tokens)
        written = int(frame.id.partition(b"-")[0] or 0)
        if written:
            result.append_ms.append(written - ts)
            result.deliver_ms.append(received * 1000 - written)
        if not result.first_delta:
            result.first_delta = received
            result.first_delta_ts = ts
        result.deltas += 1
        result.last_delta_ts = ts
        result.arrivals.append(received)
        result.relay_ms.append(received * 1000 - ts)
    elif event == b"job.started":
        result.job_started_ts = _decode(data).ts
    elif event in TERMINAL:
        result.terminal_ts = _decode(data).ts


class Departure:
    """Clients that leave together: each, once it has had enough (or failed), waits until
    all of them have."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._all = asyncio.Event()
        if count == 0:
            self._all.set()

    def arrived(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._all.set()

    async def wait(self) -> None:
        await self._all.wait()


async def run_client(
    host: str,
    port: int,
    spec: Spec,
    counters: Any,
    opening: asyncio.Semaphore,
    departure: Departure | None = None,
) -> Result:
    result = Result(started=time.time())
    terminals = 0
    connected = False
    arrived = False

    async def linger() -> None:
        nonlocal arrived
        arrived = True
        assert departure is not None
        departure.arrived()
        await departure.wait()

    def on_head() -> None:
        nonlocal connected
        connected = True
        counters[CONNECTED] += 1
        opening.release()

    def on_frames(frames: list[Frame]) -> bool:
        nonlocal terminals
        counters[EVENTS] += len(frames)
        for frame in frames:
            _record(result, frame)
            if frame.event in TERMINAL:
                terminals += 1
                if terminals == spec.stop_after:
                    return True
        return False

    await opening.acquire()
    try:
        await follow(
            host,
            port,
            spec.path,
            on_frames,
            spec.method,
            spec.body,
            on_head=on_head,
            linger=linger if spec.linger and departure is not None else None,
        )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        counters[FAILED] += 1
    finally:
        if spec.linger and departure is not None and not arrived:
            departure.arrived()  # failed: the others need not wait for it
        if connected:
            counters[CONNECTED] -= 1
        else:
            opening.release()
    counters[DONE] += 1
    return result


async def run_group(
    host: str, port: int, specs: list[Spec], counters: Any, open_limit: int, hold_limit: int
) -> list[Result]:
    """Run `specs` at once (at most `open_limit` connecting, `hold_limit` open at a time:
    lingering clients must all fit in `hold_limit`)."""
    opening = asyncio.Semaphore(open_limit)
    holding = asyncio.Semaphore(hold_limit)
    departure = Departure(sum(1 for s in specs if s.linger))

    async def one(spec: Spec) -> Result:
        async with holding:
            return await run_client(host, port, spec, counters, opening, departure)

    return await asyncio.gather(*(one(s) for s in specs))


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (each client is a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return None
    return uvloop.new_event_loop


async def _report_cpu(counters: Any, since: float, every_s: float = 0.1) -> None:
    """The CPU time spent running clients (start-up and imports excluded) in the
    process's counters, for the parent's CPU-per-event split."""
    while True:
        counters[CPU_US] = int((time.process_time() - since) * 1e6)
        await asyncio.sleep(every_s)


def generator_main(
    host: str,
    port: int,
    specs: bytes,
    counters: Any,
    out: Connection,
    open_limit: int,
    hold_limit: int,
) -> None:
    """Entry point of a load-generator process: run the clients, send back the results.

    The cyclic garbage collector is off here: a generator stamps each frame with the time
    its bytes arrived, so its own pauses would count as the server's relay delay, and
    with 5,000 clients a full collection took 20-80 ms of CPU (60-140 ms wall on a busy
    host) in `--phase fanout`. A generator lives for one phase (or capacity step); the
    few reference cycles its clients leave are freed when it exits."""
    gc.disable()
    raise_fd_limit()
    decoded = msgspec.msgpack.decode(specs, type=list[Spec])
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        since = time.process_time()
        runner.get_loop().create_task(_report_cpu(counters, since))
        results = runner.run(run_group(host, port, decoded, counters, open_limit, hold_limit))
    counters[CPU_US] = int((time.process_time() - since) * 1e6)
    out.send_bytes(msgspec.msgpack.encode(results))
    out.close()
