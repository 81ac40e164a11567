"""The worker's typed state, created at start-up and closed at shut-down (see `worker.main`)."""

import asyncio
import contextlib
import os
import socket
from typing import Any

from arq.connections import ArqRedis

from spool.shared import autopipe
from spool.shared.approvals import Approvals
from spool.shared.connections import RedisClients, arq_pool
from spool.shared.limits import TenantLimits, worker_member
from spool.shared.queue import JobQueue
from spool.shared.sessions import SessionQueue
from spool.shared.settings import Settings
from spool.shared.store import JobStore
from spool.shared.streams import StreamWriter
from spool.worker.batcher import Batcher
from spool.worker.duties import publish_tools, sweep_approvals
from spool.worker.lifecycle import Leases, Running, heartbeat, listen
from spool.worker.metrics import MetricsServer

_CTX_KEY = "spool"


class WorkerState:
    def __init__(self, settings: Settings, clients: RedisClients, concurrency: int = 1) -> None:
        self.settings = settings
        self.clients = clients
        self.keys = keys = clients.keys
        self.store = JobStore(clients.main, keys, settings.retention_s)
        self.writer = StreamWriter(
            clients.streams, keys, settings.retention_s, settings.stream_maxlen
        )
        self.batcher = Batcher(self.writer)
        self.sessions = SessionQueue(clients.main, keys, settings.retention_s)
        self.arq: ArqRedis = arq_pool(clients.main, keys)
        self.pipe = autopipe.shared(clients.main)  # many jobs' starts and ends, batched
        self.queue = JobQueue(clients.main, keys)
        self.limits = TenantLimits(clients.main, keys, settings)
        self.concurrency = concurrency
        self.approvals = Approvals(clients.main, keys)
        self.running = Running()
        self.leases = Leases(clients.main, keys, settings.lease_s)
        self.wake = asyncio.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = MetricsServer(clients.main, clients.keys, lambda: len(self.running.cancels))
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        s = self.settings
        self._tasks = [
            asyncio.create_task(
                heartbeat(
                    self.clients.main,
                    self.keys,
                    self.leases,
                    self.running,
                    worker_member(self.name, self.concurrency),
                    s.heartbeat_s,
                    s.lease_s,
                )
            ),
            asyncio.create_task(listen(self.clients.main, self.keys, self.running, self.wake)),
            asyncio.create_task(publish_tools(self.clients.main, self.keys, s)),
            asyncio.create_task(sweep_approvals(self.approvals, self.store)),
        ]
        if s.worker_metrics_port is not None:
            await self.metrics.start(s.worker_metrics_host, s.worker_metrics_port)

    async def aclose(self) -> None:
        await self.metrics.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):  # this worker's capacity leaves the fleet now
            await self.clients.main.zrem(
                self.keys.workers, worker_member(self.name, self.concurrency)
            )
        await self.batcher.aclose()
        await self.clients.aclose()

    @staticmethod
    def of(ctx: dict[str, Any]) -> "WorkerState":
        state = ctx[_CTX_KEY]
        assert isinstance(state, WorkerState)
        return state

    def install(self, ctx: dict[str, Any]) -> None:
        ctx[_CTX_KEY] = self
