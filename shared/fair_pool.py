"""A bounded Redis connection pool that serves its waiters first come, first served.

redis-py's `BlockingConnectionPool` makes callers wait on an `asyncio.Condition`: a
released connection wakes the first waiter, but a caller that arrives before that waiter
runs again takes the connection, and the woken waiter goes back to the END of the queue
(`Condition.wait_for` waits again). In a busy process a few callers lose that race over
and over: in a burst of 1,000 `POST /v1/stream` on one API (docs/benchmarks-history.md) half the
waits were under 7 ms while the longest grew past the API's 10 s bound and were answered
503. Here the turns are an `asyncio.Semaphore`, which queues every caller that finds none
free, in order: the longest wait is about the queue's length times the time a connection
is held.
"""

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

NO_CONNECTION = "No connection available."  # redis-py's words: `api.errors` answers 503 on them


class FairBlockingPool(BlockingConnectionPool):
    """At most `max_connections`; a caller waits up to `timeout` (None: as long as it takes)
    behind those who came before it, then raises redis-py's own `ConnectionError`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._turns = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *_args: Any, **_options: Any) -> AbstractConnection:
        try:
            async with asyncio.timeout(self.timeout):
                await self._turns.acquire()
        except TimeoutError as exc:
            raise RedisConnectionError(NO_CONNECTION) from exc
        connection: AbstractConnection = self.get_available_connection()  # type: ignore[no-untyped-call]  # one per turn
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        await super(BlockingConnectionPool, self).release(connection)  # not the Condition's
        self._turns.release()
