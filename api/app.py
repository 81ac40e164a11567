"""The FastAPI application: `create_app(settings, role)`."""

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp

from spool.api import (
    openapi,
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
from spool.api.outermost import Outermost
from spool.api.state import Role, lifespan_for
from spool.shared.settings import Settings

DESCRIPTION = """Submit LLM jobs and follow their output as Server-Sent Events that survive
dropped connections: resume with `Last-Event-ID` and get every event once, in order.
Errors are `{"error": {"code", "message"}}`. Streams carry the `SpoolEvent` schemas.
"""


def _outermost(app: FastAPI, *, check_host: bool, events: bool, jobs: bool) -> None:
    """`Outermost` outside even starlette's `ServerErrorMiddleware`: starlette builds the
    middleware stack lazily with this method, which no option reaches."""
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return Outermost(build(), check_host=check_host, events=events, jobs=jobs)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def create_app(
    settings: Settings, role: Role = "all", *, check_host: bool = False, outermost: bool = True
) -> FastAPI:
    """`role`: `jobs` (job routes only), `events` (the SSE fan-out only), or `all`.
    `check_host`: answer loopback `Host` names only (open mode on a loopback address).
    `outermost`: serve the events route and the two submission routes before FastAPI
    (`api.outermost`); off, the FastAPI routes serve them (the tests compare the two)."""
    app = FastAPIOffline(  # /docs and /redoc with their assets served here: no CDN
        title="Spool",
        summary="Durable, resumable LLM streaming",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan_for(settings),
        static_url="/docs-assets",
    )
    install_error_handlers(app)
    _outermost(
        app,
        check_host=check_host,
        events=outermost and role in ("all", "events"),
        jobs=outermost and role in ("all", "jobs"),
    )
    openapi.install(app)
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
