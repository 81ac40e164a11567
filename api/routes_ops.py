"""Operational routes: liveness, readiness, metrics, and the demo page."""

from importlib import resources

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from spool.api import metrics
from spool.api.errors import redis_unavailable
from spool.api.openapi import PlainText, doc
from spool.api.routes_jobs import json_response
from spool.api.state import State
from spool.shared.metrics import exposition

router = APIRouter()


class Status(msgspec.Struct):
    status: str


@router.get("/healthz", tags=["ops"], openapi_extra=doc({200: Status}, public=True))
async def healthz() -> Response:
    """The process is up."""
    return json_response(Status("ok"))


@router.get("/readyz", tags=["ops"], openapi_extra=doc({200: Status}, errors=(503,), public=True))
async def readyz(state: State) -> Response:
    """Redis (and the stream Redis) answer."""
    try:
        await state.clients.main.ping()
        await state.clients.streams.ping()
    except Exception as exc:  # the detail (addresses) goes to the log, not to anyone asking
        return redis_unavailable(exc)
    return json_response(Status("ready"))


@router.get("/metrics", tags=["ops"], openapi_extra=doc({200: PlainText}, public=True))
async def prometheus_metrics(request: Request, state: State) -> Response:
    """This process's metrics in Prometheus' text format (the queue is read now)."""
    await metrics.QUEUE.refresh(state.clients.main, state.keys)
    body, content_type = exposition(metrics.REGISTRY, request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})


@router.get("/", include_in_schema=False)
async def demo_page() -> HTMLResponse:
    page = resources.files("api").joinpath("static/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
