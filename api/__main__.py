"""`python -m api [--port] [--host] [--role] [--allow-open]`: the HTTP service (`spool api`)."""

import ipaddress
import logging
import socket
from types import FrameType

import click
import uvicorn
from fastapi import FastAPI

from spool.api import logs
from spool.api.app import create_app
from spool.api.hub import Hub
from spool.shared.settings import Settings

log = logging.getLogger("spool.api")


def is_loopback(host: str) -> bool:
    try:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
    except (OSError, ValueError):
        return False


class Server(uvicorn.Server):
    """uvicorn, but open SSE streams end at once on SIGTERM so clients reconnect elsewhere."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        hub = getattr(self.app.state, "hub", None)
        if isinstance(hub, Hub):
            hub.shutdown()


@click.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--role", type=click.Choice(["all", "jobs", "events"]), default="all", show_default=True
)
@click.option("--allow-open", is_flag=True, help="serve without API keys on a non-loopback address")
def main(port: int, host: str, role: str, allow_open: bool) -> None:
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.open_access and not allow_open and not is_loopback(host):
        raise click.UsageError(
            f"no SPOOL_API_KEYS set: refusing to serve {host} openly "
            "(use --allow-open on a private network)"
        )
    app = create_app(settings, role, check_host=settings.open_access and not allow_open)  # type: ignore[arg-type]
    config = uvicorn.Config(
        app, host=host, port=port, log_level=settings.log_level.lower(), timeout_graceful_shutdown=5
    )
    logs.install()
    Server(config, app).run()


if __name__ == "__main__":
    main()
