"""Operational routes: liveness, readiness, and the demo page."""

import logging
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from spool.api.errors import error_response
from spool.api.routes_jobs import json_response
from spool.api.state import State

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/healthz", tags=["ops"])
async def healthz() -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


@router.get("/readyz", tags=["ops"])
async def readyz(state: State) -> Response:
    """Redis (and the stream Redis) answer."""
    try:
        await state.clients.main.ping()
        await state.clients.streams.ping()
    except Exception as exc:  # the detail (addresses) goes to the log, not to anyone asking
        log.warning("readiness check failed: %s", exc)
        return error_response(
            503, "redis_unavailable", "Redis is unreachable; retry shortly.", {"Retry-After": "1"}
        )
    return json_response({"status": "ready"})


@router.get("/", include_in_schema=False)
async def demo_page() -> HTMLResponse:
    page = resources.files("api").joinpath("static/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
