"""The API process's resources, owned by the FastAPI lifespan and handed to routes."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request

from spool.api import metrics
from spool.api.hub import Hub
from spool.api.idempotency import Idempotency
from spool.shared import autopipe
from spool.shared.approvals import Approvals
from spool.shared.connections import RedisClients
from spool.shared.limits import TenantLimits
from spool.shared.sessions import SessionQueue
from spool.shared.settings import Settings
from spool.shared.singleflight import SingleFlight
from spool.shared.store import JobStore
from spool.shared.streams import StreamWriter
from spool.shared.submit import Submitter
from spool.shared.toolnames import ServedNames

Role = Literal["all", "jobs", "events"]


def api_client_name(pid: int | None = None) -> str:
    """The name of an API process's Redis connections in `CLIENT LIST`."""
    return f"spool-api-{os.getpid() if pid is None else pid}"


class StreamCounts:
    """Open event streams per tenant in this process (`SPOOL_TENANT_MAX_STREAMS`)."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def acquire(self, tenant: str, limit: int) -> bool:
        count = self.open.get(tenant, 0)
        if count >= limit:
            return False
        self.open[tenant] = count + 1
        return True

    def release(self, tenant: str) -> None:
        count = self.open.get(tenant, 0) - 1
        if count > 0:
            self.open[tenant] = count
        else:
            self.open.pop(tenant, None)


class AppState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = RedisClients(settings, api_client_name())
        self.keys = keys = self.clients.keys
        self.store = JobStore(self.clients.main, keys, settings.retention_s)
        self.writer = StreamWriter(
            self.clients.streams, keys, settings.retention_s, settings.stream_maxlen
        )
        self.sessions = SessionQueue(self.clients.main, keys, settings.retention_s)
        self.idempotency = Idempotency(self.clients.main, keys)
        self.approvals = Approvals(self.clients.main, keys)
        self.session_owner = SingleFlight(self.store.session)
        self.hub = Hub(self.clients.streams, keys)
        self.streams = StreamCounts()
        self.limits = TenantLimits(self.clients.main, keys, settings)
        self.tool_names = ServedNames(self.clients.main, keys)
        # one Redis for everything: a submission is one script call (shared/submit.py)
        self.submitter = (
            Submitter(
                self.clients.main,
                keys,
                self.store,
                self.limits,
                self.sessions,
                settings.stream_maxlen,
            )
            if self.clients.streams is self.clients.main
            else None
        )

    async def aclose(self) -> None:
        await self.hub.aclose()
        await autopipe.shared(self.clients.main).aclose()  # batches already written
        await self.clients.aclose()


def lifespan_for(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        state = AppState(settings)
        metrics.STREAMS_OPEN.set_function(lambda: sum(state.streams.open.values()))
        await state.hub.start()
        app.state.hub = state.hub  # for the server's signal handler
        try:
            yield {"spool": state}
        finally:
            await state.aclose()

    return lifespan


async def _state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request
    state = request.state.spool
    assert isinstance(state, AppState)
    return state


State = Annotated[AppState, Depends(_state)]
