"""`spool submit` and `spool tail`: a job's or a session's stream printed as it arrives."""

import json
import sys
from typing import Any

import click
import msgspec

from spool.cli.client import URL_HELP, api_key, base_url, err_console, run_client
from spool.cli.render import Renderer
from spool_client import SpoolClient, StreamInterrupted


async def _follow(
    client: SpoolClient,
    renderer: Renderer,
    session: str,
    job: str | None,
    start: str | None,
) -> int:
    """Print the stream; the exit status: 0 completed, 1 failed or cancelled, 3 interrupted."""
    status = 0
    try:
        async for event in client.events(session, job_id=job, last_event_id=start):
            renderer.show(event)
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


@click.command()
@click.argument("prompt")
@click.option("--model", "-m", default=None, help="e.g. simulated, anthropic:claude-sonnet-4-5")
@click.option("--session", "-s", default=None, help="session id (default: a new one)")
@click.option("--follow", "-f", is_flag=True, help="stream the output, resuming after drops")
@click.option("--param", "-p", multiple=True, help="a model parameter, key=JSON-value")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@click.option("--url", default=None, help=URL_HELP)
def submit(
    prompt: str,
    model: str | None,
    session: str | None,
    follow: bool,
    param: tuple[str, ...],
    as_json: bool,
    url: str | None,
) -> None:
    """Enqueue a job; with --follow, stream its output to the terminal."""

    async def run() -> int:
        async with SpoolClient(base_url(url), api_key()) as client:
            accepted = await client.submit(
                prompt, model=model, session_id=session, parameters=_params(param) or None
            )
            if not follow:
                print(json.dumps(msgspec.to_builtins(accepted)))
                return 0
            err_console.print(
                f"job {accepted.job_id} in session {accepted.session_id}", style="dim"
            )
            renderer = Renderer(sys.stdout, as_json=as_json)
            return await _follow(client, renderer, accepted.session_id, accepted.job_id, None)

    sys.exit(run_client(run))


@click.command()
@click.argument("session")
@click.option("--from", "start", default=None, help="resume after this event id")
@click.option("--job", default=None, help="only this job's events, ending with it")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line")
@click.option("--url", default=None, help=URL_HELP)
def tail(session: str, start: str | None, job: str | None, as_json: bool, url: str | None) -> None:
    """Print a session's events as they arrive (Ctrl-C stops)."""

    async def run() -> int:
        async with SpoolClient(base_url(url), api_key()) as client:
            renderer = Renderer(sys.stdout, as_json=as_json, headers=True)
            return await _follow(client, renderer, session, job, start)

    sys.exit(run_client(run))
