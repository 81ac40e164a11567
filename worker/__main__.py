"""`python -m spool.worker [--concurrency N] [--ready-file PATH]`: one worker process.

`spool worker` is this command. The worker's modules are imported when it runs, so that
`spool --help` and the client commands do not load arq and the provider SDKs.

Garbage collection is tuned once the modules are imported (`shared.startup.tune_gc`).
"""

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from spool.shared.startup import start_process, tune_gc


@click.command()
@click.option("--concurrency", default=100, show_default=True, help="jobs run at once")
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="created once the worker takes jobs (for supervisors such as `spool dev`)",
)
def main(concurrency: int, ready_file: Path | None) -> None:
    """One worker process: runs jobs from the queue (settings: SPOOL_* variables)."""
    settings = start_process()
    from spool.worker.main import serve  # imported here: see the docstring

    tune_gc()
    run(serve(settings, concurrency, ready_file))


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
