"""`spool job ID` and `spool cancel ID`: a job's record, and cancelling it."""

import sys

import click
import msgspec

from spool.cli.client import client_options, connect, run_client
from spool.cli.terminal import json_line


@click.command()
@click.argument("job_id")
@client_options
def job(job_id: str, url: str, api_key: str | None) -> None:
    """Show a job's record (status, attempt, output, usage, cost, error) as JSON."""

    async def run() -> int:
        async with connect(url, api_key) as client:
            view = await client.get_job(job_id)
        print(json_line(msgspec.to_builtins(view)))
        return 0

    sys.exit(run_client(run))


@click.command()
@click.argument("job_id")
@client_options
def cancel(job_id: str, url: str, api_key: str | None) -> None:
    """Cancel a job: prints its status (`cancelling`, or how it already ended)."""

    async def run() -> int:
        async with connect(url, api_key) as client:
            answer = await client.cancel(job_id)
        print(json_line(msgspec.to_builtins(answer)))
        return 0

    sys.exit(run_client(run))
