"""The FastAPI application: `create_app(settings, role)`."""

from fastapi import FastAPI

from spool.api import (
    routes_approvals,
    routes_jobs,
    routes_models,
    routes_openai,
    routes_ops,
    routes_seeds,
    routes_sessions,
    routes_ui_chat,
)
from spool.api.errors import install_error_handlers
from spool.api.guard import Guard
from spool.api.state import Role, lifespan_for
from spool.shared.settings import Settings


def create_app(settings: Settings, role: Role = "all", *, check_host: bool = False) -> FastAPI:
    """`role`: `jobs` (job routes only), `events` (the SSE fan-out only), or `all`.
    `check_host`: answer loopback `Host` names only (open mode on a loopback address)."""
    app = FastAPI(
        title="Spool",
        summary="Durable, resumable LLM streaming",
        version="0.1.0",
        lifespan=lifespan_for(settings),
    )
    install_error_handlers(app)
    app.add_middleware(Guard, check_host=check_host)
    app.include_router(routes_ops.router)
    if role in ("all", "jobs"):
        app.include_router(routes_jobs.router)
        app.include_router(routes_approvals.router)
        app.include_router(routes_models.router)
        app.include_router(routes_sessions.router)
        app.include_router(routes_ui_chat.router)
        app.include_router(routes_openai.router)
        app.include_router(routes_seeds.router)
    if role in ("all", "events"):
        app.include_router(routes_sessions.events_router)
        app.include_router(routes_ui_chat.events_router)
    return app
