"""`spool submit` and `spool tail`: a job's or a session's stream printed as it arrives."""

import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import click
import msgspec

from spool.cli.answer import AnswerWriter
from spool.cli.approve import Approvals
from spool.cli.client import client_options, connect, err_console, run_client
from spool.cli.render import Renderer
from spool.cli.terminal import json_line
from spool_client import SpoolClient, StreamEvent, StreamInterrupted


class Shows(Protocol):
    def show(self, event: StreamEvent) -> None: ...
    def note(self, text: str, style: str = ...) -> None: ...


async def _follow(
    client: SpoolClient,
    renderer: Shows,
    session: str,
    job: str | None,
    start: str | None,
    hook: Callable[[StreamEvent], Awaitable[None]] | None = None,
) -> int:
    """Print the stream; the exit status: 0 completed, 1 failed or cancelled, 3 interrupted."""
    status = 0
    events = client.events(session, job_id=job, last_event_id=start)
    try:
        async with contextlib.aclosing(events):  # closed here, even when printing fails
            async for event in events:
                renderer.show(event)
                if hook is not None:
                    await hook(event)
                if event.type in ("job.failed", "job.cancelled"):
                    status = 1
    except StreamInterrupted as exc:
        renderer.note(f"[{exc}; resume with: spool tail {session} --from {exc.last_event_id}]")
        return 3
    return status


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=JSON` pairs (a value that is not JSON is taken as a string)."""
    params: dict[str, Any] = {}
    for item in pairs:
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _tools(values: tuple[str, ...]) -> list[str] | None:
    """`--tools a,b --tools c` → `["a", "b", "c"]`."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


@click.command()
@click.argument("prompt")
@click.option("--model", "-m", default=None, help="e.g. simulated, anthropic:claude-sonnet-4-5")
@click.option("--session", "-s", default=None, help="session id (default: a new one)")
@click.option("--follow", "-f", is_flag=True, help="stream the output, resuming after drops")
@click.option("--param", "-p", multiple=True, help="a model parameter, key=JSON-value")
@click.option("--agent", default=None, help="a named agent from the agents file")
@click.option("--system", default=None, help="the system prompt")
@click.option("--tools", multiple=True, help="tools the model may call: a,b or repeated")
@click.option("--max-steps", type=click.IntRange(1, 64), default=None, help="agent-loop steps")
@click.option(
    "--require-approval", is_flag=True, default=None, help="every tool call waits for a y/n"
)
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the followed output to this file (implies --follow)",
)
@click.option("--text-only", is_flag=True, help="the answer's text only (implies --follow)")
@client_options
def submit(
    prompt: str,
    model: str | None,
    session: str | None,
    follow: bool,
    param: tuple[str, ...],
    agent: str | None,
    system: str | None,
    tools: tuple[str, ...],
    max_steps: int | None,
    require_approval: bool | None,
    as_json: bool,
    output: Path | None,
    text_only: bool,
    url: str,
    api_key: str | None,
) -> None:
    """Enqueue a job; with --follow, stream its output to the terminal.

    A tool call waiting for approval is asked about (y/n) when stdin is a terminal;
    otherwise the command to decide it is printed.
    """
    fields = {"agent": agent, "system": system, "tools": _tools(tools), "max_steps": max_steps}
    fields["require_approval"] = require_approval

    async def run() -> int:
        async with connect(url, api_key) as client:
            accepted = await client.submit(
                prompt,
                model=model,
                session_id=session,
                parameters=_params(param) or None,
                **fields,
            )
            if not (follow or output or text_only):
                print(json_line(msgspec.to_builtins(accepted)))
                return 0
            note = f"job {accepted.job_id} in session {accepted.session_id}"
            err_console.print(note, style="dim", markup=False)
            approvals = Approvals(client, accepted.job_id, interactive=sys.stdin.isatty())
            with contextlib.ExitStack() as files:
                out = (
                    files.enter_context(output.open("w", encoding="utf-8"))
                    if output
                    else sys.stdout
                )
                renderer: Shows = AnswerWriter(out) if text_only else Renderer(out, as_json=as_json)
                return await _follow(
                    client, renderer, accepted.session_id, accepted.job_id, None, approvals
                )

    sys.exit(run_client(run))


@click.command()
@click.argument("session")
@click.option("--from", "start", default=None, help="resume after this event id")
@click.option("--job", default=None, help="only this job's events, ending with it")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@client_options
def tail(
    session: str, start: str | None, job: str | None, as_json: bool, url: str, api_key: str | None
) -> None:
    """Print a session's events as they arrive (Ctrl-C stops)."""

    async def run() -> int:
        async with connect(url, api_key) as client:
            renderer = Renderer(sys.stdout, as_json=as_json, headers=True)
            return await _follow(client, renderer, session, job, start)

    sys.exit(run_client(run))
