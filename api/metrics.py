"""The API process's metrics (contract §11), served at `GET /metrics` (routes_ops.py).

One registry per process (see `shared/metrics.py`); every metric is listed in
docs/operations.md. `spool_jobs_finished_total` here counts only the jobs the API ends
itself (cancelled before any worker started them, or not enqueued); the workers count
the rest.
"""

from prometheus_client import Counter, Gauge

from spool.shared.metrics import QueueGauges, new_registry

REGISTRY = new_registry()

JOBS_SUBMITTED = Counter("spool_jobs_submitted", "Jobs accepted", registry=REGISTRY)
JOBS_FINISHED = Counter(
    "spool_jobs_finished",
    "Jobs ended, by terminal status (in the API: cancelled before start, or not enqueued)",
    ["status"],
    registry=REGISTRY,
)
STREAMS_OPEN = Gauge("spool_event_streams_open", "SSE responses open now", registry=REGISTRY)
EVENTS_DELIVERED = Counter(
    "spool_events_delivered", "Events written to SSE responses", registry=REGISTRY
)
QUEUE = QueueGauges(REGISTRY)
