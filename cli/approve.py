"""Human approval of tool calls from the terminal (contract §7).

`spool approve JOB CALL [--reject] [--reason TEXT] [--arguments JSON]` decides one
pending call. `spool submit --follow` uses `Approvals`: on a terminal it asks y/n when
a `tool.approval_requested` arrives; otherwise it prints the call and the commands that
decide it, and keeps following (someone else may decide, or the request times out).
"""

import json
import sys
from typing import Any

import click
import msgspec

from spool.cli.client import client_options, connect, err_console, run_client
from spool.cli.terminal import json_line, printable
from spool_client import ClientError, SpoolClient, StreamEvent


def _call_text(data: dict[str, Any]) -> str:
    call = f"{data.get('name')}({json.dumps(data.get('arguments') or {}, ensure_ascii=False)})"
    return printable(call)  # the model wrote it: shown on a terminal


class Approvals:
    """An event hook for a followed job: decide its approval requests as they arrive."""

    def __init__(self, client: SpoolClient, job_id: str, *, interactive: bool) -> None:
        self.client = client
        self.job_id = job_id
        self.interactive = interactive

    async def __call__(self, event: StreamEvent) -> None:
        if event.type != "tool.approval_requested":
            return
        call_id = str(event.data.get("call_id"))
        call = _call_text(event.data)
        decision = self._ask(call) if self.interactive else None
        if decision is None:
            self._explain(call, call_id)
            return
        reason = None if decision else "rejected at the terminal"
        try:
            await self.client.approve(self.job_id, call_id, decision, reason)
        except ClientError as exc:
            if exc.status != 409:  # 409: decided meanwhile (another client, or it expired)
                raise
            err_console.print(f"[{call_id} was already decided]", style="yellow", markup=False)

    @staticmethod
    def _ask(call: str) -> bool | None:
        """y/n on the terminal; None when stdin closes before an answer."""
        try:
            answer: bool = click.confirm(f"Approve tool call {call}?", default=None, err=True)
        except click.Abort:
            return None
        return answer

    def _explain(self, call: str, call_id: str) -> None:
        command = f"spool approve {self.job_id} {call_id}"
        lines = (
            f"[approval needed] {call}",
            f"  approve: {command}",
            f"  reject:  {command} --reject --reason '...'",
        )
        for line in lines:
            click.echo(line, err=True)


def _arguments(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        arguments = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise click.BadParameter("must be a JSON object")
    return arguments


@click.command()
@click.argument("job")
@click.argument("call")
@click.option("--reject", is_flag=True, help="reject the call (default: approve it)")
@click.option("--reason", default=None, help="why; the model sees it when the call is rejected")
@click.option(
    "--arguments", callback=_arguments, default=None, help="run the call with these (JSON object)"
)
@client_options
def approve(
    job: str,
    call: str,
    reject: bool,
    reason: str | None,
    arguments: dict[str, Any] | None,
    url: str,
    api_key: str | None,
) -> None:
    """Decide a pending tool approval: approve (default) or --reject call CALL of job JOB."""

    async def run() -> int:
        async with connect(url, api_key) as client:
            answer = await client.approve(job, call, not reject, reason, arguments)
        print(json_line(msgspec.to_builtins(answer)))
        return 0

    sys.exit(run_client(run))
