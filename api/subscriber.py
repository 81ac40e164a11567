"""The hub's subscriptions to notices: one channel and connection, or one per shard.

Standalone (`ChannelSubscriber`): one pub/sub connection per API process, subscribed to
the deployment's one notices channel, on which every append script call publishes the
notices of all its appends (`shared/streams.py`); redis-py re-subscribes after a
reconnect. Messages are read off that connection directly: `PubSub.listen()` costs a
health check, a retry wrapper and a dict per message; every other reply still goes
through `PubSub.handle_message`, which keeps redis-py's subscription bookkeeping (what it
re-subscribes after a reconnect).

On a Redis Cluster (`ShardSubscriber`): the append script `SPUBLISH`es on the session's
shard, so the hub holds one connection per primary and `SSUBSCRIBE`s each channel on the
node that serves its slot (one command per slot: a sharded subscribe may not span
slots). When a slot moves, the node drops its
subscribers with `sunsubscribe` (or answers `MOVED`); the subscriber then reads the slot
table again and subscribes those channels on their new node.

Both report to one callback, `on_message(kind, channel, data)`: `kind` is "message"
(a list of notices) or "subscribe" (a subscription is confirmed, after a (re)connect too:
the hub re-reads the sessions that channel announces, since notices may have been missed
meanwhile). `per_session` says whether the hub subscribes each followed session's channel
(a cluster) or the one channel carries them all (standalone).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import MovedError

from spool.shared.cluster import Address, ClusterRedis

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes, bytes | None], None]
PING_S = 15.0  # keeps an idle subscriber connection checked


class Subscriber(Protocol):
    per_session: bool

    async def subscribe(self, channels: list[bytes]) -> None: ...

    async def unsubscribe(self, channels: list[bytes]) -> None: ...

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


def subscriber_for(redis: Redis, notices: str, on_message: OnMessage) -> Subscriber:
    """`notices`: the standalone Redis's one notices channel (`Keys.notices`)."""
    if isinstance(redis, ClusterRedis):
        return ShardSubscriber(redis, on_message)
    return ChannelSubscriber(redis, notices, on_message)


class ChannelSubscriber:
    """Standalone: one pub/sub connection, subscribed to the one notices channel."""

    per_session = False

    def __init__(self, redis: Redis, notices: str, on_message: OnMessage) -> None:
        self._pubsub: PubSub = redis.pubsub()
        self._notices = notices
        self._on_message = on_message

    async def subscribe(self, channels: list[bytes]) -> None:
        """Nothing to do: the notices channel carries every session's notices."""

    async def unsubscribe(self, channels: list[bytes]) -> None:
        """Nothing to do: the notices channel carries every session's notices."""

    async def run(self) -> None:
        """Read notifications forever, reconnecting (redis-py re-subscribes) on errors."""
        while True:
            try:
                await self._pubsub.subscribe(self._notices)
                conn = self._pubsub.connection
                assert conn is not None  # subscribe() made it
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub pub/sub connection lost (%s); reconnecting", exc)
                if self._pubsub.connection is not None:  # the next subscribe reconnects
                    with contextlib.suppress(Exception):
                        await self._pubsub.connection.disconnect()
                await asyncio.sleep(0.5)

    async def _read(self, conn: Connection) -> None:
        pinged = False
        on_message = self._on_message
        while True:
            reply = await conn.read_response(
                timeout=PING_S, disconnect_on_error=False, push_request=True
            )
            if reply is None:  # quiet for PING_S: check the peer is still there
                if pinged:
                    raise ConnectionError("no answer to PING")
                await self._pubsub.ping()
                pinged = True
                continue
            pinged = False
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                on_message("message", reply[1], reply[2])
                continue
            message = await self._pubsub.handle_message(reply)  # type: ignore[no-untyped-call]
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel, data = message.get("type"), message.get("channel"), message.get("data")
        if kind in ("message", "subscribe") and isinstance(channel, bytes):
            self._on_message(kind, channel, data if isinstance(data, bytes) else None)

    async def aclose(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


def _by_slot(channels: Iterable[bytes]) -> list[list[bytes]]:
    groups: dict[int, list[bytes]] = {}
    for channel in channels:
        groups.setdefault(key_slot(channel), []).append(channel)
    return list(groups.values())


class _Shard:
    """One connection to one primary, subscribed to the channels whose slots it serves."""

    def __init__(self, address: Address, options: dict[str, Any], owner: "ShardSubscriber"):
        self.address = address
        self.channels: set[bytes] = set()
        self._options = options
        self._owner = owner
        self._conn: Connection | None = None
        self.task = asyncio.create_task(self._run(), name=f"hub-shard-{address[0]}:{address[1]}")

    async def add(self, channels: list[bytes]) -> None:
        self.channels.update(channels)
        await self._send("SSUBSCRIBE", channels)

    async def remove(self, channels: list[bytes]) -> None:
        self.channels.difference_update(channels)
        await self._send("SUNSUBSCRIBE", channels)

    async def _send(self, verb: str, channels: Iterable[bytes]) -> None:
        conn = self._conn
        if conn is None:  # (re)connecting: the connection subscribes to all on connect
            return
        for group in _by_slot(channels):
            await conn.send_command(verb, *group)

    async def _run(self) -> None:
        while True:
            host, port = self.address
            conn = Connection(host=host, port=port, socket_keepalive=True, **self._options)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                self._conn = conn
                await self._send("SSUBSCRIBE", list(self.channels))
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub shard %s:%s lost (%s); reconnecting", host, port, exc)
                self._owner.moved()  # the node may have failed over: read the slot table again
                await asyncio.sleep(0.5)
            finally:
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()

    async def _read(self, conn: Connection) -> None:
        pinged = False
        while True:
            try:
                reply = await conn.read_response(timeout=PING_S, disconnect_on_error=False)
            except MovedError:  # a subscribe sent here after its slot moved
                self._owner.moved()
                continue
            if reply is None:  # quiet for PING_S: check the peer is still there
                if pinged:
                    raise ConnectionError("no answer to PING")
                await conn.send_command("PING")
                pinged = True
                continue
            pinged = False
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind, channel, data = reply[0], reply[1], reply[2]
        if kind == b"smessage":
            self._owner.on_message("message", channel, data)
        elif kind == b"ssubscribe":
            self._owner.on_message("subscribe", channel, None)
        elif kind == b"sunsubscribe" and channel in self.channels:  # the server dropped it
            self.channels.discard(channel)
            self._owner.lost(channel)


class ShardSubscriber:
    """A cluster: one connection per primary, `SSUBSCRIBE` on the node of each channel."""

    per_session = True

    def __init__(self, cluster: ClusterRedis, on_message: OnMessage) -> None:
        self._cluster = cluster
        self.on_message = on_message
        self._options = {
            k: v for k, v in cluster.connection_kwargs.items() if k != "health_check_interval"
        }
        self._shards: dict[Address, _Shard] = {}
        self._wanted: set[bytes] = set()
        self._lost: set[bytes] = set()
        self._rebalance = asyncio.Event()

    def _shard(self, address: Address) -> _Shard:
        shard = self._shards.get(address)
        if shard is None:
            shard = self._shards[address] = _Shard(address, self._options, self)
        return shard

    async def subscribe(self, channels: list[bytes]) -> None:
        self._wanted.update(channels)
        for address, group in self._placed(channels).items():
            await self._shard(address).add(group)

    async def unsubscribe(self, channels: list[bytes]) -> None:
        self._wanted.difference_update(channels)
        self._lost.difference_update(channels)
        gone = set(channels)
        for shard in self._shards.values():
            mine = [c for c in shard.channels if c in gone]
            if mine:
                await shard.remove(mine)

    def _placed(self, channels: Iterable[bytes]) -> dict[Address, list[bytes]]:
        placed: dict[Address, list[bytes]] = {}
        for channel in channels:
            placed.setdefault(self._cluster.address_of(channel), []).append(channel)
        return placed

    def lost(self, channel: bytes) -> None:
        self._lost.add(channel)
        self.moved()

    def moved(self) -> None:
        self._rebalance.set()

    async def run(self) -> None:
        """Move channels to the node that serves them whenever a slot moved."""
        while True:
            await self._rebalance.wait()
            self._rebalance.clear()
            try:
                await self._cluster.refresh()
                await self._place_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub could not re-place its subscriptions (%s); retrying", exc)
                await asyncio.sleep(0.5)
                self._rebalance.set()

    async def _place_all(self) -> None:
        lost, self._lost = self._lost & self._wanted, set()
        for address, shard in list(self._shards.items()):
            stray = [c for c in shard.channels if self._cluster.address_of(c) != address]
            if stray:
                await shard.remove(stray)
                lost.update(stray)
        for address, group in self._placed(lost).items():
            await self._shard(address).add(group)

    async def aclose(self) -> None:
        tasks = [shard.task for shard in self._shards.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
