"""What every client command shares: the service's URL and key, output, and exit statuses.

Client commands take `--url` (env `SPOOL_URL`) and `--api-key` (env `SPOOL_API_KEY`).
A closed pipe (`spool submit ... | head`) ends the command quietly.
"""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from spool.cli.terminal import printable
from spool_client import ClientError, SpoolClient

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left

F = TypeVar("F", bound=Callable[..., Any])


def url_option(f: F) -> F:
    return click.option(
        "--url",
        envvar="SPOOL_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="the Spool service",
    )(f)


def client_options(f: F) -> F:
    """`--url` and `--api-key`, both also read from the environment."""
    f = click.option(
        "--api-key",
        envvar="SPOOL_API_KEY",
        default=None,
        show_envvar=True,
        help="sent as a Bearer token (needed when the service has SPOOL_API_KEYS)",
    )(f)
    return url_option(f)


def connect(url: str, api_key: str | None) -> SpoolClient:
    return SpoolClient(url, api_key or None)


def run_client(run: Callable[[], Awaitable[int]]) -> int:
    """Run a client command's coroutine; its exit status (2 for an error from the service)."""

    async def main() -> int:
        return await run()

    try:
        return asyncio.run(main())
    except ClientError as exc:
        err_console.print(f"error: {printable(str(exc))}", style="red", markup=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _quiet_broken_pipe() -> int:
    """The reader of stdout left: point stdout at /dev/null so the exit flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE
