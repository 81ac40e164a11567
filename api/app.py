"""The FastAPI application: `create_app(settings, role)`."""

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from spool.api import (
    openapi,
    routes_approvals,
    routes_jobs,
    routes_models,
    routes_ops,
    routes_sessions,
)
from spool.api.errors import install_error_handlers
from spool.api.state import Role, lifespan_for
from spool.shared.settings import Settings

DESCRIPTION = """Submit LLM jobs and follow their output as Server-Sent Events that survive
dropped connections: resume with `Last-Event-ID` and get every event once, in order.
Errors are `{"error": {"code", "message"}}`. Streams carry the `SpoolEvent` schemas.
"""


def create_app(settings: Settings, role: Role = "all") -> FastAPI:
    """`role`: `jobs` (job routes only), `events` (the SSE fan-out only), or `all`."""
    app = FastAPIOffline(  # /docs and /redoc with their assets served here: no CDN
        title="Spool",
        summary="Durable, resumable LLM streaming",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan_for(settings),
        static_url="/docs-assets",
    )
    install_error_handlers(app)
    openapi.install(app)
    app.include_router(routes_ops.router)
    if role in ("all", "jobs"):
        app.include_router(routes_jobs.router)
        app.include_router(routes_approvals.router)
        app.include_router(routes_models.router)
        app.include_router(routes_sessions.router)
    if role in ("all", "events"):
        app.include_router(routes_sessions.events_router)
    return app
