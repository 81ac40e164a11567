"""`GET /v1/models`: what this deployment can run (contract §2)."""

from fastapi import APIRouter
from fastapi.responses import Response

from spool.api.auth import Tenant
from spool.api.openapi import doc
from spool.api.routes_jobs import json_response
from spool.api.state import State
from spool.api.submission import agents_of
from spool.shared.catalog import ModelList, models

router = APIRouter()


@router.get("/v1/models", tags=["models"], openapi_extra=doc({200: ModelList}, errors=(401, 503)))
async def list_models(state: State, tenant: Tenant) -> Response:
    """The models, each with what it supports (streaming, thinking, tools) and its price."""
    return json_response(ModelList(models=models(agents_of(state))))
