"""The `spool` command (contract §1): one group, one module per command group.

- `spool api`, `spool worker`: the server processes' own commands (`spool.api.__main__`,
  `spool.worker.__main__`), which import the server only when they run.
- `spool dev` (cli/dev.py): supervises Redis (embedded when none is reachable), the API
  and the workers.
- `spool submit`, `spool tail` (cli/stream.py), `spool job`, `spool cancel` (cli/jobs.py):
  HTTP clients, with `--url` and `--api-key` (cli/client.py).
- `spool eval` (cli/eval.py), `spool approve` (cli/approve.py): streaming evaluations and
  tool-call approvals.
- `spool bench` (cli/bench_command.py): the load generator.
"""

import click

from spool.api.__main__ import main as api
from spool.cli.approve import approve
from spool.cli.bench_command import bench
from spool.cli.dev import dev
from spool.cli.eval import eval_command
from spool.cli.jobs import cancel, job
from spool.cli.stream import submit, tail
from spool.worker.__main__ import main as worker


@click.group()
@click.version_option(package_name="spool", message="%(prog)s %(version)s")
def main() -> None:
    """Spool: durable, resumable LLM streaming."""


main.add_command(api, "api")
main.add_command(worker, "worker")
for command in (dev, submit, tail, job, cancel, bench, eval_command, approve):
    main.add_command(command)
