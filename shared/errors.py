"""Spool's root exception.

SpoolError
├── api.errors.ApiError          the HTTP caller erred, or Redis is away (status + code)
├── worker.errors.ProviderError  a model provider failed (becomes a typed `job.failed`)
├── shared.streams.StreamClosed  an append was refused: the job ended, or a newer attempt owns it
└── shared.streams.WorkerOwned   an API-side append was refused: a worker already runs the job
"""


class SpoolError(Exception):
    """Root of every exception Spool raises on purpose."""
