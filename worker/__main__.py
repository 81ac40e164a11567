"""`python -m worker [--concurrency N]`: one worker process (what `spool worker` runs)."""

import asyncio
import logging

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
    asyncio.run(serve(settings, concurrency))


if __name__ == "__main__":
    main()
