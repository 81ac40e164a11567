"""Serving the app with uvicorn: loopback checks for open mode, and a prompt SIGTERM."""

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


def serve(settings: Settings, host: str, port: int, role: str, allow_open: bool) -> None:
    if settings.open_access and not allow_open and not is_loopback(host):
        raise click.UsageError(
            f"no SPOOL_API_KEYS set: refusing to serve {host} openly "
            "(use --allow-open on a private network)"
        )
    check_host = settings.open_access and not allow_open  # DNS rebinding (contract §4)
    app = create_app(settings, role, check_host=check_host)  # type: ignore[arg-type]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        # json: uvicorn's loggers propagate to Spool's root handler, one JSON object a line
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        # uvicorn formats each response's access line (client, path quoted again) before
        # the logger's level is checked: off when that level drops the lines anyway
        access_log=logging.getLevelName(settings.log_level.upper()) <= logging.INFO,
        timeout_graceful_shutdown=5,
    )
    logs.install()  # after uvicorn.Config set up its loggers
    Server(config, app).run()
