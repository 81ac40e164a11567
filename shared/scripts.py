"""Running Lua scripts by their SHA: each loaded once, however many callers need it at once.

redis-py's script objects send `EVALSHA` and, on `NOSCRIPT`, load the script and run it
again, each caller for itself. When thousands of callers run a script Redis does not
hold yet (a process's first burst, clients reconnecting after a deploy, Redis restarted
or its scripts flushed), every one of them meets `NOSCRIPT` and sends its own
`SCRIPT LOAD`; and every error reply leaves a reference cycle in redis-py (~20 objects,
freed only by a full collection): 8,000 SSE followers reconnecting to one API left
~150,000 (docs/benchmarks-history.md, seventh round). `Scripts.run` loads a script before its
first use and again after Redis lost it, one `SCRIPT LOAD` for all the callers waiting
then (on a Redis Cluster the client sends it to every primary).
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from spool.shared.connections import one_per_client
from spool.shared.singleflight import SingleFlight

T = TypeVar("T")
Script = str | bytes | memoryview  # a script's source, as redis-py takes it


class Scripts:
    """The scripts one client has loaded (`scripts_of`: one per client)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._loaded: set[str] = set()  # SHAs known to be in Redis's script cache
        self._loads: dict[str, int] = {}  # SHA → `SCRIPT LOAD`s done
        self._sources: dict[str, Script] = {}  # SHA → the script
        self._load = SingleFlight(self._load_once)  # one `SCRIPT LOAD` out per SHA

    async def run(self, lua: Script, sha: str, evalsha: Callable[[], Awaitable[T]]) -> T:
        """`evalsha()` (an `EVALSHA` of `sha`, the SHA1 of `lua`) once the script is
        loaded; if Redis lost it meanwhile (it did not run then), loaded again and run."""
        if sha not in self._loaded:
            self._sources[sha] = lua
            await self._load(sha)
        loads = self._loads[sha]
        try:
            return await evalsha()
        except NoScriptError:  # Redis restarted or flushed its scripts
            if self._loads[sha] == loads:  # nobody loaded it since: load it, for all
                self._loaded.discard(sha)
                await self._load(sha)
            return await evalsha()

    async def _load_once(self, sha: str) -> None:
        await self._redis.script_load(self._sources[sha])
        self._loads[sha] = self._loads.get(sha, 0) + 1
        self._loaded.add(sha)


# the client's one `Scripts`: everything that runs scripts on it shares the loads
scripts_of = one_per_client(Scripts)
