"""The benchmark's phases, each returning its figures as a JSON-ready dict.

- `p1`: submit → first `text.delta` at the client, through Spool (`POST /v1/stream`)
  and through the direct baseline (`POST /stream`), same load, same run.
- `streams`: many concurrent generations, each followed by one client: relay delay
  (worker stamp → client arrival), events/s, worker concurrency and CPU.
- `fanout`: many SSE clients on few sessions held by one API process: Redis
  connections, RSS per client, then a generation per session fanned out to all. The
  clients stay until every session's job has ended and then leave together: their
  leaving (10,000 disconnects in about a second) is measured as its own figure, the
  API's CPU for it, instead of delaying the last deltas of the sessions still running.
"""

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from spool.cli.bench import stats
from spool.cli.bench.clients import Result, Spec
from spool.cli.bench.generators import Live, run_generators
from spool.cli.bench.meter import Meter
from spool.cli.bench.stack import Stack, cpu_seconds, rss

Figures = dict[str, Any]
Progress = Callable[[str, Live], None]


class Options(msgspec.Struct, kw_only=True):
    p1_jobs: int = 200
    p1_concurrency: int = 1
    streams: int = 1000
    stream_tokens: int = 100
    tokens_per_second: float = 50.0
    fanout_clients: int = 10_000
    fanout_sessions: int = 100
    fanout_tokens: int = 60
    fanout_tokens_per_second: float = 6.0
    capacity_start: int = 200
    capacity_max: int = 2000
    capacity_tokens: int = 500
    capacity_p99_ms: float = 50.0
    density_streams: int = 1000
    density_tokens: int = 250
    submissions: int = 2000
    submission_connections: int = 32
    submission_streams: int = 1000
    submission_stream_tokens: int = 200
    submission_stream_tps: float = 10.0
    processes: int = 2


WORDS = ("stream", "durable", "resume", "event", "token", "worker", "queue", "session")


def passage(tokens: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(tokens)) + "."


def job_body(tokens: int, tps: float, ttft_ms: int = 0, **extra: Any) -> dict[str, Any]:
    params = {"text": passage(tokens), "ttft_ms": ttft_ms, "tokens_per_second": tps}
    return {"input": "bench", "model": "simulated", "parameters": params, **extra}


class Sampler:
    """Probes of the processes under test, taken on every progress tick."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.max_api_redis_connections = 0
        self.max_redis_clients = 0
        self.max_api_rss = 0
        self._last = 0.0

    def __call__(self, live: Live) -> None:
        if time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        self.max_api_redis_connections = max(
            self.max_api_redis_connections, self.stack.api_redis_connections() or 0
        )
        self.max_redis_clients = max(self.max_redis_clients, self.stack.redis_clients())
        self.max_api_rss = max(self.max_api_rss, rss(self.stack.api_pid) or 0)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def p1(stack: Stack, opts: Options, progress: Progress) -> Figures:
    body = _encode(job_body(10, 1000.0))
    out: Figures = {"jobs": opts.p1_jobs, "concurrency": opts.p1_concurrency}
    targets = {"baseline": (stack.baseline_url, "/stream"), "spool": (stack.api_url, "/v1/stream")}
    for name, (url, path) in targets.items():
        warm = [Spec("POST", path, body) for _ in range(min(10, opts.p1_jobs))]
        run_generators(url, warm, processes=1, hold_limit=opts.p1_concurrency)
        specs = [Spec("POST", path, body) for _ in range(opts.p1_jobs)]
        results, _ = run_generators(
            url,
            specs,
            processes=1,
            hold_limit=opts.p1_concurrency,
            on_tick=_labelled(progress, f"P1 {name}"),
        )
        out[name] = stats.summary(stats.first_delta_ms(results))
        out[name]["errors"] = len(stats.errors(results))
        out[f"_{name}_samples"] = stats.first_delta_ms(results)
    out["overhead_ms"] = {
        q: _diff(out["spool"][q], out["baseline"][q]) for q in ("p50", "p90", "p99")
    }
    return out


def _labelled(progress: Progress, label: str) -> Callable[[Live], None]:
    return lambda live: progress(label, live)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def streams(stack: Stack, opts: Options, progress: Progress) -> Figures:
    return run_streams(
        stack, opts, progress, count=opts.streams, tokens=opts.stream_tokens, label="streams"
    )


def run_streams(
    stack: Stack,
    opts: Options,
    progress: Progress,
    *,
    count: int,
    tokens: int,
    label: str,
    timeout_s: float = 600.0,
) -> Figures:
    """`count` concurrent `POST /v1/stream` generations of `tokens` at the options' pace."""
    body = _encode(job_body(tokens, opts.tokens_per_second))
    specs = [Spec("POST", "/v1/stream", body) for _ in range(count)]
    sampler = Sampler(stack)
    meter = Meter(stack)
    seen: list[Live] = []

    def tick(live: Live) -> None:
        progress(label, live)
        sampler(live)
        seen[:] = [live]

    results, elapsed = run_generators(
        stack.api_url,
        specs,
        processes=opts.processes,
        open_limit=128,
        on_tick=tick,
        timeout_s=timeout_s,
    )
    events = sum(r.events for r in results)
    cpu = meter.split(events, seen[0].cpu_seconds if seen else None)
    return {
        "streams": count,
        "tokens_per_stream": tokens,
        "tokens_per_second": opts.tokens_per_second,
        "relay_ms": stats.summary(stats.relay_ms(results)),
        "relay_split": stats.relay_parts(results),
        "relay_by_second": stats.relay_by_second(results),
        "first_delta_ms": stats.summary(stats.first_delta_ms(results)),
        "pace_tokens_per_s": stats.summary(stats.pace_tokens_per_s(results)),
        "events": events,
        "events_per_s": round(events / elapsed, 1),
        "steady": stats.steady_rate(results),
        "worker_concurrency_reached": stats.max_overlap(results),
        "worker_cpu_percent": cpu["worker"]["cpu_percent"],
        "api_cpu_percent": cpu["api"]["cpu_percent"],
        "cpu": cpu,
        "api_redis_connections_max": sampler.max_api_redis_connections,
        "redis_clients_max": sampler.max_redis_clients,
        "errors": _errors(results),
        "_relay_samples": stats.relay_ms(results),
    }


def _errors(results: list[Result]) -> Figures:
    found = stats.errors(results)
    return {"count": len(found), "first": found[:3]}


def _create_sessions(stack: Stack, count: int, run: str) -> list[str]:
    """Sessions with one short finished job each, so that clients may follow them."""
    sessions = [f"bench-{run}-{i}" for i in range(count)]
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        jobs = [
            http.post("/v1/jobs", json=job_body(3, 1000.0, session_id=s)).json()["job_id"]
            for s in sessions
        ]
        deadline = time.monotonic() + 120
        for job in jobs:
            while http.get(f"/v1/jobs/{job}").json()["status"] != "completed":
                if time.monotonic() > deadline:
                    raise TimeoutError("the fan-out sessions' first jobs did not complete")
                time.sleep(0.05)
    return sessions


def fanout(stack: Stack, opts: Options, progress: Progress) -> Figures:
    sessions = _create_sessions(stack, opts.fanout_sessions, uuid.uuid4().hex[:8])
    specs = [
        Spec("GET", f"/v1/sessions/{sessions[i % len(sessions)]}/events", stop_after=2, linger=True)
        for i in range(opts.fanout_clients)
    ]
    body = job_body(opts.fanout_tokens, opts.fanout_tokens_per_second)
    sampler = Sampler(stack)
    held: Figures = {"rss_before": rss(stack.api_pid), "api_cpu_before": _api_cpu_settled(stack)}

    def tick(live: Live) -> None:
        progress("fan-out", live)
        sampler(live)
        if "clients_held" not in held and live.connected + live.failed >= live.total:
            _on_all_connected(stack, live, held, sessions, body)
        if "clients_held" in held and "api_cpu_leaving" not in held and live.done > live.failed:
            held["api_cpu_leaving"] = cpu_seconds(stack.api_pid)  # the first client left
        held["generator_cpu_s"] = live.cpu_seconds - held.get("generator_cpu_held", 0.0)

    results, elapsed = run_generators(
        stack.api_url, specs, processes=opts.processes, open_limit=512, on_tick=tick
    )
    leaving, left = held.get("api_cpu_leaving"), _api_cpu_settled(stack)
    rss_delta = (held.get("rss_held") or 0) - (held["rss_before"] or 0)
    generating = sum(r.events for r in results) - held.get("events_held", 0)
    meter = held.get("meter")
    cpu = meter.split(generating, held["generator_cpu_s"]) if isinstance(meter, Meter) else None
    relay = _relay_since(results, held.get("wall_held_ms", 0.0))
    return {
        "clients": opts.fanout_clients,
        "sessions": opts.fanout_sessions,
        "clients_held": held.get("clients_held"),
        "api_redis_connections_held": held.get("api_redis_connections"),
        "api_redis_connections_max": sampler.max_api_redis_connections,
        "redis_clients_max": sampler.max_redis_clients,
        "api_rss_before_mb": _mb(held["rss_before"]),
        "api_rss_held_mb": _mb(held.get("rss_held")),
        "api_rss_max_mb": _mb(sampler.max_api_rss),
        "rss_per_client_kb": round(rss_delta / 1024 / max(1, held.get("clients_held") or 1), 2),
        "tokens_per_session": opts.fanout_tokens,
        "tokens_per_second": opts.fanout_tokens_per_second,
        "events_delivered_while_generating": generating,
        "events_per_s": round(generating / max(0.001, elapsed - held.get("t_held", 0)), 1),
        "api_cpu_percent": cpu["api"]["cpu_percent"] if cpu else None,
        "cpu": cpu,
        "relay_ms": stats.summary(relay),
        "relay_ms_with_replay": stats.summary(stats.relay_ms(results)),
        "relay_by_second": stats.relay_by_second(results, held.get("wall_held_ms", 0.0)),
        "relay_split": stats.relay_parts(results),
        "api_us_per_client_joining": _per_client_us(
            held.get("api_cpu_before"), held.get("api_cpu_joined"), held.get("clients_held")
        ),
        "api_us_per_client_leaving": _per_client_us(leaving, left, len(results)),
        "errors": _errors(results),
        "_relay_samples": relay,
    }


def _per_client_us(before: float | None, after: float | None, clients: int | None) -> float | None:
    """The API's CPU between two readings, per client (µs)."""
    if before is None or after is None or not clients:
        return None
    return round((after - before) * 1e6 / clients, 1)


def _api_cpu_settled(stack: Stack, quiet_s: float = 0.005, cap_s: float = 10.0) -> float | None:
    """The API's CPU time once it has gone quiet (under `quiet_s` of CPU in 0.2 s): the
    departures it was still handling when the clients' processes ended are counted."""
    last, deadline = cpu_seconds(stack.api_pid), time.monotonic() + cap_s
    while last is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_seconds(stack.api_pid)
        if now is None or now - last < quiet_s:
            return now
        last = now
    return last


def _relay_since(results: list[Result], since_ms: float) -> list[float]:
    """The relay of the deltas written once every client was connected: a client first
    replays the session's earlier job, whose deltas are as old as the connecting took."""
    return [
        relay
        for r in results
        for arrived, relay in zip(r.arrivals, r.relay_ms, strict=True)
        if arrived * 1000 - relay >= since_ms
    ]


def _on_all_connected(
    stack: Stack, live: Live, held: Figures, sessions: list[str], body: dict[str, Any]
) -> None:
    """Every client is connected: measure what holding them costs, then start generating."""
    held["api_cpu_joined"] = _api_cpu_settled(stack)  # every join's replay written
    held["clients_held"] = live.connected
    held["t_held"] = time.monotonic() - live.started
    held["wall_held_ms"] = time.time() * 1000
    held["events_held"] = live.events
    held["rss_held"] = rss(stack.api_pid)
    held["api_redis_connections"] = stack.api_redis_connections()
    held["meter"] = Meter(stack)  # CPU per event: while generating only
    held["generator_cpu_held"] = live.cpu_seconds
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        for session in sessions:
            http.post("/v1/jobs", json={**body, "session_id": session}).raise_for_status()


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
