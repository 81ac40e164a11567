"""What every client command shares: where the service is, and running a client coroutine."""

import asyncio
import os
from collections.abc import Awaitable, Callable

from rich.console import Console

from spool_client import ClientError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

URL_HELP = "service URL (default $SPOOL_URL or http://127.0.0.1:8000)"


def base_url(url: str | None) -> str:
    return url or os.environ.get("SPOOL_URL", "http://127.0.0.1:8000")


def api_key() -> str | None:
    return os.environ.get("SPOOL_API_KEY") or None


def run_client(run: Callable[[], Awaitable[int]]) -> int:
    """Run a client command's coroutine; its exit status (2 for an error from the service)."""

    async def main() -> int:
        return await run()

    try:
        return asyncio.run(main())
    except ClientError as exc:
        err_console.print(f"error: {exc}", style="red")
        return 2
    except KeyboardInterrupt:
        return 130
