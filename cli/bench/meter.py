"""CPU time of the processes under test over a phase, and its split per delivered event.

The worker and the API are measured with psutil on their pids; Redis with its own
`INFO cpu` (`used_cpu_user` + `used_cpu_sys`), which also works for a Redis on another
host. The load generator is not Spool, but it shares the machine: its CPU (what its
processes spent running clients, reported through their shared counters) is given beside
the others, so that a reader can see whether it was the bottleneck.
"""

import time

import redis

from spool.cli.bench.stack import Stack, cpu_seconds

PROCESSES = ("worker", "api", "redis")


def redis_cpu_seconds(url: str) -> float | None:
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, float] = client.info("cpu")  # type: ignore[assignment]
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except redis.RedisError:
        return None
    finally:
        client.close()


class Meter:
    """Started at the beginning of a phase (or step); `split(events)` at its end."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.wall0 = time.monotonic()
        self.cpu0 = self._cpu()

    def _cpu(self) -> dict[str, float | None]:
        return {
            "worker": cpu_seconds(self.stack.worker_pid),
            "api": cpu_seconds(self.stack.api_pid),
            "redis": redis_cpu_seconds(self.stack.redis_url),
        }

    def split(
        self, events: int, generator_cpu_s: float | None = None
    ) -> dict[str, dict[str, float | None]]:
        """Per process: CPU % of one core over the wall time, and µs of CPU per event;
        `generator_cpu_s`: what the load generators spent meanwhile, if known."""
        wall = max(1e-6, time.monotonic() - self.wall0)
        cpu1 = self._cpu()
        names: tuple[str, ...] = PROCESSES
        if generator_cpu_s is not None:
            self.cpu0["generator"], cpu1["generator"] = 0.0, generator_cpu_s
            names += ("generator",)
        out: dict[str, dict[str, float | None]] = {}
        for name in names:
            before, after = self.cpu0[name], cpu1[name]
            if before is None or after is None:
                out[name] = {"cpu_percent": None, "us_per_event": None}
                continue
            spent = after - before
            out[name] = {
                "cpu_percent": round(spent / wall * 100, 1),
                "us_per_event": round(spent / max(1, events) * 1e6, 1),
            }
        return out
