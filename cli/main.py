"""The `spool` command (contract §1): one group, one module per command group.

The CLI composes processes, it does not import them: `spool api` and `spool worker`
become `python -m spool.api` / `python -m spool.worker` (cli/servers.py), `spool dev`
supervises those plus an embedded Redis when none is reachable (cli/dev.py). `submit`
and `tail` are HTTP clients (cli/stream.py); `bench` is the load generator
(cli/bench_command.py).
"""

import click

from spool.cli.approve import approve
from spool.cli.bench_command import bench
from spool.cli.dev import dev
from spool.cli.eval import eval_command
from spool.cli.servers import api, worker
from spool.cli.stream import submit, tail


@click.group()
def main() -> None:
    """Spool: durable, resumable LLM streaming."""


for command in (api, worker, dev, submit, tail, bench, eval_command, approve):
    main.add_command(command)
