"""Load-generator processes: split the clients over several processes, watch, collect.

One Python event loop reading thousands of SSE streams saturates a core; the
benchmark would then measure itself. The clients are dealt round-robin to
`processes` spawned generators; the parent only watches their shared counters
(for the progress bar and the `on_tick` probes) and gathers their results.
"""

import multiprocessing
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from spool.cli.bench.clients import (
    CONNECTED,
    CPU_US,
    DONE,
    EVENTS,
    FAILED,
    Result,
    Spec,
    generator_main,
)

Tick = Callable[["Live"], None]


class Live:
    """The generators' counters, summed."""

    def __init__(self, counters: list[Any], total: int) -> None:
        self._counters = counters
        self.total = total
        self.started = time.monotonic()

    def _sum(self, slot: int) -> int:
        return sum(int(c[slot]) for c in self._counters)

    @property
    def connected(self) -> int:
        return self._sum(CONNECTED)

    @property
    def events(self) -> int:
        return self._sum(EVENTS)

    @property
    def done(self) -> int:
        return self._sum(DONE)

    @property
    def failed(self) -> int:
        return self._sum(FAILED)

    @property
    def cpu_seconds(self) -> float:
        """CPU time the generator processes have used so far (sampled every 0.1 s)."""
        return self._sum(CPU_US) / 1e6


def run_generators(
    url: str,
    specs: list[Spec],
    *,
    processes: int,
    open_limit: int = 256,
    hold_limit: int = 1_000_000,
    on_tick: Tick | None = None,
    tick_s: float = 0.25,
    timeout_s: float = 600.0,
) -> tuple[list[Result], float]:
    """Run every client of `specs`; the results and the wall time the clients took."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ctx = multiprocessing.get_context("spawn")
    processes = max(1, min(processes, len(specs)))
    counters = [ctx.Array("q", 5, lock=False) for _ in range(processes)]
    pipes, procs = [], []
    for i in range(processes):
        mine = msgspec.msgpack.encode(specs[i::processes])
        receive, send = ctx.Pipe(duplex=False)
        limits = (max(1, open_limit // processes), max(1, hold_limit // processes))
        proc = ctx.Process(
            target=generator_main,
            args=(host, port, mine, counters[i], send, *limits),
            daemon=True,
        )
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    live = Live(counters, len(specs))
    started = time.monotonic()
    deadline = started + timeout_s
    results: list[Result] = []
    waiting = list(pipes)
    try:
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load generators still running after {timeout_s:.0f}s")
            if on_tick is not None:
                on_tick(live)
            for pipe in [p for p in waiting if p.poll(tick_s / len(waiting))]:
                results += msgspec.msgpack.decode(pipe.recv_bytes(), type=list[Result])
                waiting.remove(pipe)
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a load-generator process failed")
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    if on_tick is not None:
        on_tick(live)
    return results, elapsed
