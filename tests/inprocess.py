"""Spool in the test's own event loop (the `inprocess` tier), as arq's and httpx's suites run
theirs: the API app served by uvicorn as a task of the loop on a free port (real sockets, so
streams arrive as they are written), and a worker as another task.

Nothing here may die mid-test: tests that kill a process stay on the `process` tier. The
stack has a Redis database of its own, so the process tier's session-wide worker (on
database 0) never takes its jobs. Tests on it must never block the loop (no `time.sleep`,
no blocking I/O): the API and the worker run in it.
"""

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from spool.api.app import create_app
from spool.cli.embedded import free_port
from spool.shared.settings import Settings
from spool.worker.main import serve
from tests.procs import until

DATABASE = 1


def database_url(redis_url: str, db: int = DATABASE) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{db}"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: in a test process, pytest owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, http: str = "auto", lifespan: str = "on") -> AsyncIterator[str]:
    """`app` served by uvicorn in the test's loop on a free port: its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        http=http,  # type: ignore[arg-type]
        ws="none",
        lifespan=lifespan,  # type: ignore[arg-type]
        log_config=None,
        log_level="warning",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 30, "uvicorn")
        assert not task.done(), "uvicorn failed to start"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


class InProcessStack:
    """`async with InProcessStack(settings, run_dir) as stack: stack.url`."""

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.ready_file = run_dir / "inprocess-worker.ready"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=free_port(),
            log_config=None,  # the test process's logging stays as pytest set it
            log_level="warning",
            ws="none",  # no websocket implementation to import (some warn on import)
            lifespan="on",
        )
        self.server = _Server(config)
        self.url = f"http://127.0.0.1:{config.port}"
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> "InProcessStack":
        worker = serve(self.settings, 20, self.ready_file, handle_signals=False)
        self._tasks = [asyncio.create_task(self.server.serve()), asyncio.create_task(worker)]
        try:
            await until(lambda: self.server.started or self._failed(), 30, "the API")
            await until(lambda: self.ready_file.exists() or self._failed(), 30, "the worker")
            assert not self._failed(), "the in-process stack failed to start"
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def _failed(self) -> bool:
        return any(task.done() for task in self._tasks)

    async def __aexit__(self, *exc: object) -> None:
        server, worker = self._tasks
        self.server.should_exit = True
        worker.cancel()
        with warnings.catch_warnings():
            # arq's Worker.close() calls redis-py's deprecated close(): not ours to fix, and
            # only a test process (warnings are errors) would notice
            warnings.filterwarnings("ignore", r"Call to deprecated close\.", DeprecationWarning)
            results = await asyncio.gather(server, worker, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result
