"""Concurrent identical look-ups share one call.

When ten thousand clients of a hundred sessions connect at once, each asks Redis who owns
its session; with single-flight, the callers of one key that arrive while its call is in
flight await that call instead of making their own. Nothing is cached: a caller that
arrives after the call returned makes a new one.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self, call: Callable[[K], Awaitable[V]]) -> None:
        self._call = call
        self._flights: dict[K, asyncio.Future[V]] = {}

    async def __call__(self, key: K) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._call(key))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)  # one caller going away does not cancel the rest

    def _landed(self, key: K, flight: "asyncio.Future[V]") -> None:
        self._flights.pop(key, None)
        if not flight.cancelled():
            flight.exception()  # retrieved, so that one whose callers all left is not logged
