"""`python -m spool.api [--port] [--host] [--role] [--allow-open]`: the HTTP service.

`spool api` is this command. The server's modules are imported when it runs, so that
`spool --help` and the client commands do not load FastAPI. Garbage collection is tuned
once they are imported (`shared.startup.tune_gc`).
"""

import click

from spool.shared.startup import start_process, tune_gc


@click.command()
@click.option("--port", default=8000, show_default=True, help="TCP port to listen on")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option(
    "--role",
    type=click.Choice(["all", "jobs", "events"]),
    default="all",
    show_default=True,
    help="jobs: the job routes only; events: the SSE fan-out only; all: both",
)
@click.option("--allow-open", is_flag=True, help="serve without API keys on a non-loopback address")
def main(port: int, host: str, role: str, allow_open: bool) -> None:
    """The HTTP service: job routes and the SSE fan-out (settings: SPOOL_* variables)."""
    settings = start_process()
    from spool.api.server import serve  # imported here: see the docstring

    tune_gc()
    serve(settings, host, port, role, allow_open)


if __name__ == "__main__":
    main()
