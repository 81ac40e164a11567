"""The commands of one event-loop turn in one round trip: auto-pipelining on a pooled client.

In a busy process a pooled command holds its connection from its write until the event
loop comes back to the coroutine that reads its reply: tens of milliseconds when the
loop also serves a thousand streams, so a pool of 8 connections passes a few hundred
commands a second however fast Redis answers (a burst of 1,000 `POST /v1/stream` waited
seconds for the pool so). `AutoPipeline.call` queues a command instead; the commands
queued during one turn of the loop go out in one write on one pooled connection, and
one task reads their replies back in order: one checkout and one wake-up for all of
them.

Replies are Redis's own, without redis-py's response callbacks: for `EVALSHA` and the
commands whose raw reply the caller decodes itself. An error reply fails its own
command only; anything else (the connection lost, a timeout, no connection free in
time) fails every command of the batch, and the connection is dropped, as redis-py
drops it after a failed command. A command whose caller is cancelled before the batch
is written is not sent.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from spool.shared.connections import one_per_client
from spool.shared.scripts import scripts_of

MAX_BATCH = 256  # commands per write; a larger turn's commands go out as several batches

_Queued = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(self, redis: Redis, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._pool: ConnectionPool = redis.connection_pool
        self._registered: dict[str, AsyncScript] = {}
        self._scripts = scripts_of(redis)
        self._max_batch = max_batch
        self._queued: list[_Queued] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, *command: Any) -> Any:
        """Run `command` in the current turn's batch; its raw reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._cut)  # after the callbacks already due in this turn
        self._queued.append((command, future))
        return await future

    def register(self, lua: str) -> AsyncScript:
        """`lua` as a script of this pipeline's client (one object per source, kept)."""
        script = self._registered.get(lua)
        if script is None:
            script = self._registered[lua] = self._redis.register_script(lua)
        return script

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """`script` run by its SHA in the current turn's batch (loaded first, once for all
        callers, and again if Redis lost it: `shared/scripts.py`)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return await self._scripts.run(script.script, script.sha, lambda: self.call(*command))

    def _cut(self) -> None:
        queued, self._queued = self._queued, []
        for i in range(0, len(queued), self._max_batch):
            task = asyncio.create_task(self._send(queued[i : i + self._max_batch]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[_Queued]) -> None:
        try:
            conn = await self._pool.get_connection()
        except BaseException as exc:
            _fail(queued, exc)
            if not isinstance(exc, Exception):
                raise
            return
        batch = [(command, future) for command, future in queued if not future.done()]
        try:
            if batch:
                packed = conn.pack_commands([command for command, _ in batch])
                await conn.send_packed_command(packed, check_health=False)
            for _, future in batch:
                try:
                    reply = await conn.read_response()
                except ResponseError as exc:  # a reply: the connection is still in step
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(reply)
        except BaseException as exc:
            _fail(batch, exc)
            with contextlib.suppress(Exception):
                await conn.disconnect()
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """Wait for the batches already cut (their callers get their replies)."""
        await asyncio.gather(*self._sending, return_exceptions=True)


# the client's one `AutoPipeline`: every component using it joins the same batches
shared = one_per_client(AutoPipeline)


def _fail(queued: list[_Queued], exc: BaseException) -> None:
    for _, future in queued:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
