"""`python -m worker [--concurrency N]`: one worker process (what `spool worker` runs)."""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import click

from spool.shared.settings import Settings
from spool.worker.main import serve


@click.command()
@click.option("--concurrency", default=100, show_default=True, help="jobs run at once")
def main(concurrency: int) -> None:
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run(serve(settings, concurrency))


def run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed (it is with uvicorn[standard]): a worker's loop runs
    thousands of timers and sockets, and uvloop's are several times cheaper."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


if __name__ == "__main__":
    main()
