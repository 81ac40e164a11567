"""The stream Redis as a Redis Cluster: every command goes to the node that holds its slot.

`SPOOL_STREAM_REDIS_URL` may name any node of a Redis (or Valkey) Cluster. `open_streams`
asks that node (`INFO cluster`) and, on a cluster, returns a `ClusterRedis`: a drop-in
`redis.asyncio.Redis` that keeps a slot table (`CLUSTER SLOTS`) and one bounded
connection pool per primary, and sends each command, script call or pipeline to the
node of its first key. Every key of a session shares one hash tag, so everything Spool
does to one session (a script call, a pipeline) touches one slot; a command that would
span slots fails with Redis's own `CROSSSLOT` error rather than being split.

Slot moves: a `MOVED` reply updates the table (then the whole table is read again) and
the command is resent to the new owner; an `ASK` reply (a slot being migrated) resends
it once to the target, preceded by `ASKING`; `TRYAGAIN` (a multi-key command while the
keys are split across a migration) is retried after a short pause. Pipelines resend only
the commands that were redirected, so nothing that succeeded runs twice.

Why our own routing on redis-py rather than a cluster client: redis-py 5.x (arq pins
< 6) has no pub/sub on its asyncio cluster client, and the measured alternatives
(docs/operations.md, "Streams on a cluster") were slower (coredis) or a second client
library with its own API for every stream call site (valkey-glide) for a small gain; per-node
redis-py clients keep one code path, and standalone mode is the plain client, untouched.
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, cast

import redis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterParser
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, TryAgainError

from spool.shared.fair_pool import FairBlockingPool

log = logging.getLogger(__name__)

SLOTS = 16384
MAX_REDIRECTS = 5
TRYAGAIN_S = 0.1  # TRYAGAIN (a multi-key command mid-migration): retried this often...
TRYAGAIN_TRIES = 30  # ...this many times (then the caller's own retry takes over)
ALL_NODES = frozenset({"PING", "SCRIPT", "FLUSHDB", "FLUSHALL"})  # sent to every primary
KEYLESS = frozenset({"INFO", "CLIENT", "CLUSTER", "TIME", "DBSIZE", "CONFIG", "ECHO"})
SCRIPTED = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})

Address = tuple[str, int]


def cluster_slots(url: str) -> list[Any] | None:
    """`CLUSTER SLOTS` of the node at `url` if it runs in cluster mode, else None.

    Synchronous: processes call it once while they start. A node that cannot be reached
    is taken as standalone (with a warning): the stream Redis must answer at start-up for
    cluster mode to be detected.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        info = cast(dict[str, Any], client.info("cluster"))
        if not info.get("cluster_enabled"):
            return None
        return cast(list[Any], client.execute_command("CLUSTER", "SLOTS"))  # type: ignore[no-untyped-call]
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        log.warning("stream Redis %s did not answer (%s): assuming standalone", url, exc)
        return None
    finally:
        client.close()


def command_key(args: tuple[Any, ...]) -> Any | None:
    """The key that decides where a command goes: the first key, or None if it has none."""
    name = _name(args[0])
    if name in SCRIPTED:
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    if name in ALL_NODES or name in KEYLESS or len(args) < 2:
        return None
    return args[1]


def _name(command: Any) -> str:
    return (command.decode() if isinstance(command, bytes) else str(command)).upper().split()[0]


def _encoded(key: Any) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode()


class ClusterRedis(Redis):
    """A `Redis` whose commands go to the cluster node that serves their key's slot."""

    def __init__(
        self,
        slots: list[Any],
        connection_kwargs: dict[str, Any],
        max_connections: int,
        pool_wait_s: float | None = 10.0,
    ) -> None:
        # per connection: auth, name, timeouts, and the parser that turns MOVED, ASK and
        # TRYAGAIN replies into their exception types
        self.connection_kwargs = connection_kwargs | {"parser_class": ClusterParser}
        self._max_connections = max_connections
        self._pool_wait_s = pool_wait_s
        self._nodes: dict[Address, Redis] = {}
        self._table: list[Address] = []
        self._refreshing: asyncio.Task[None] | None = None
        self._apply_slots(slots)
        super().__init__(connection_pool=next(iter(self._nodes.values())).connection_pool)

    # -- routing -------------------------------------------------------------------

    def node_for(self, key: str | bytes) -> Redis:
        """The client of the primary that serves `key`'s slot."""
        return self._node(self._table[key_slot(_encoded(key))])

    def primaries(self) -> list[Redis]:
        """One client per primary that serves slots (each pool bounded)."""
        return [self._node(a) for a in dict.fromkeys(self._table)]

    def group_by_node(self, keys: Iterable[str]) -> dict[Address, list[int]]:
        """Indexes of `keys` per node address, in their order."""
        groups: dict[Address, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(self._table[key_slot(_encoded(key))], []).append(i)
        return groups

    def client_at(self, address: Address) -> Redis:
        return self._node(address)

    def address_of(self, key: str | bytes) -> Address:
        return self._table[key_slot(_encoded(key))]

    def _node(self, address: Address) -> Redis:
        node = self._nodes.get(address)
        if node is None:
            host, port = address
            node = self._nodes[address] = Redis(
                connection_pool=FairBlockingPool(
                    host=host,
                    port=port,
                    max_connections=self._max_connections,
                    timeout=self._pool_wait_s,
                    **self.connection_kwargs,
                )
            )
        return node

    def _apply_slots(self, slots: list[Any]) -> None:
        table: list[Address | None] = [None] * SLOTS
        for start, end, primary, *_replicas in slots:
            host = primary[0].decode() if isinstance(primary[0], bytes) else primary[0]
            address = (host, int(primary[1]))
            self._node(address)
            for slot in range(int(start), int(end) + 1):
                table[slot] = address
        default = next(a for a in table if a is not None)
        self._table = [a if a is not None else default for a in table]

    async def refresh(self) -> None:
        """Read the slot table again (after a MOVED), from any node that answers."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read_slots())
        await asyncio.shield(self._refreshing)

    def refresh_soon(self) -> None:
        """Read the slot table again in the background (callers retry on their own)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read_slots_quietly())

    async def _read_slots_quietly(self) -> None:
        try:
            await self._read_slots()
        except redis.ConnectionError as exc:
            log.warning("cluster slot table not refreshed: %s", exc)

    async def _read_slots(self) -> None:
        for node in list(self._nodes.values()):
            try:
                slots = await _execute(node, "CLUSTER", "SLOTS")
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                continue
            self._apply_slots(slots)
            return
        raise redis.ConnectionError("no cluster node answered CLUSTER SLOTS")

    async def redirected(self, error: AskError) -> Address:
        """Where to send a command again after a MOVED (the slot's new owner, and the whole
        table is read again) or an ASK (the migration's target, for this command only)."""
        if isinstance(error, MovedError):
            self._table[error.slot_id] = error.node_addr
            self._node(error.node_addr)
            await self.refresh()
            return self._table[error.slot_id]
        return error.node_addr

    # -- commands ------------------------------------------------------------------

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = _name(args[0])
        if name in ALL_NODES:
            results = await asyncio.gather(
                *(_execute(n, *args, **options) for n in self.primaries())
            )
            return results[0]
        key = command_key(args)
        node = self.node_for(key) if key is not None else self.primaries()[0]
        return await self._send(node, args, options)

    async def _send(self, node: Redis, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        asking, redirects, waits = False, 0, 0
        while True:
            try:
                if asking:
                    return await _asking(node, args, options)
                return await _execute(node, *args, **options)
            except TryAgainError:  # the keys are split by a migration in progress
                waits += 1
                if waits >= TRYAGAIN_TRIES:
                    raise
                await asyncio.sleep(TRYAGAIN_S)
            except AskError as exc:  # MovedError included
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise
                node = self._node(await self.redirected(exc))
                asking = not isinstance(exc, MovedError)
            except (redis.ConnectionError, redis.TimeoutError):
                self.refresh_soon()  # a primary may have failed over to its replica
                raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return ClusterPipeline(self, transaction, shard_hint)

    def pubsub(self, **kwargs: Any) -> Any:
        raise NotImplementedError("on a cluster, subscribe per shard (spool.shared.shardsub)")

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for node in self._nodes.values():
            await node.aclose(close_connection_pool=True)


async def _execute(node: Redis, *args: Any, **options: Any) -> Any:
    return await node.execute_command(*args, **options)  # type: ignore[no-untyped-call]


async def _asking(node: Redis, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    async with node.pipeline(transaction=False) as pipe:
        pipe.execute_command("ASKING")
        pipe.execute_command(*args, **options)
        results = await pipe.execute(raise_on_error=True)
    return results[1]


class ClusterPipeline(Pipeline):
    """A pipeline sent to the node of its first key; redirected commands are resent alone."""

    def __init__(self, cluster: ClusterRedis, transaction: bool, shard_hint: str | None) -> None:
        super().__init__(
            cluster.connection_pool, cluster.response_callbacks, transaction, shard_hint
        )
        self._cluster = cluster

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        key = next((k for args, _ in stack if (k := command_key(args)) is not None), None)
        node = self._cluster.node_for(key) if key is not None else self._cluster.primaries()[0]
        self.connection_pool = node.connection_pool
        if self.is_transaction or self.explicit_transaction:
            return await self._transaction(stack, raise_on_error)
        try:
            results = await super().execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            self._cluster.refresh_soon()  # a primary may have failed over to its replica
            raise
        for i, result in enumerate(results):
            if isinstance(result, (AskError, TryAgainError)):
                args, options = stack[i]
                try:
                    results[i] = await self._cluster.execute_command(*args, **options)
                except Exception as exc:
                    results[i] = exc
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    async def _transaction(self, stack: Any, raise_on_error: bool) -> list[Any]:
        for _ in range(MAX_REDIRECTS):
            try:
                return await super().execute(raise_on_error)
            except MovedError as exc:  # the slot moved: nothing of the transaction ran
                address = await self._cluster.redirected(exc)
                self.connection_pool = self._cluster.client_at(address).connection_pool
                self.command_stack = list(stack)
        return await super().execute(raise_on_error)
