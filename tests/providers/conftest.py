"""Fixtures of the provider tests: a fake provider, and an API and worker pointed at it."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.server import FakeProvider
from tests.fakes.stack import provider_stack
from tests.procs import Api


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture(scope="module")
def api(redis_url: str, log_dir: Path, fake: FakeProvider, tmp_path_factory: Any) -> Iterator[Api]:
    with provider_stack(redis_url, log_dir, fake, tmp_path_factory.mktemp("a") / "a.toml") as api:
        yield api


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client() as c:
        yield c
