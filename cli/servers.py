"""`spool api` and `spool worker`: the server processes, run as `python -m spool.<role>`."""

import os
import sys

import click


def _exec_module(module: str, args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def api(ctx: click.Context) -> None:
    """The HTTP service: [--port] [--host] [--role all|jobs|events] [--allow-open]."""
    _exec_module("spool.api", ctx.args)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """One worker process: [--concurrency N]."""
    _exec_module("spool.worker", ctx.args)
