"""The worker's typed state, created in arq's `on_startup` and closed in `on_shutdown`."""

import os
import socket
from typing import Any

from shared.connections import RedisClients
from shared.settings import Settings
from shared.store import JobStore
from shared.streams import StreamWriter

_CTX_KEY = "spool"


class WorkerState:
    def __init__(self, settings: Settings, clients: RedisClients) -> None:
        self.settings = settings
        self.clients = clients
        self.store = JobStore(clients.main, settings.retention_s)
        self.writer = StreamWriter(clients.streams, settings.retention_s, settings.stream_maxlen)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    @staticmethod
    def of(ctx: dict[str, Any]) -> "WorkerState":
        state = ctx[_CTX_KEY]
        assert isinstance(state, WorkerState)
        return state

    def install(self, ctx: dict[str, Any]) -> None:
        ctx[_CTX_KEY] = self
