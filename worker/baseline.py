"""`python -m worker.baseline [--port]`: the direct baseline that `spool bench` compares to.

A plain FastAPI app that streams the `simulated` model straight from a
`StreamingResponse` with SSE framing: no queue, no Redis, no worker. The same load
sent here and through Spool measures, side by side, what Spool's durability costs.
`POST /stream` takes the body of `POST /v1/jobs` (only `input` and `parameters` are
used) and answers `text.delta` events shaped like Spool's (`type`, `seq`, `ts`,
`delta`), then `job.completed`.
"""

import itertools
from collections.abc import AsyncIterator
from typing import Any

import click
import msgspec
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from spool.shared.ids import now_ms
from spool.shared.jobs import Message
from spool.worker.providers.base import ModelRequest, TextChunk
from spool.worker.providers.simulated import SimulatedProvider


class Body(msgspec.Struct):
    input: str = ""
    parameters: dict[str, Any] = {}


class Delta(msgspec.Struct, tag="text.delta", tag_field="type"):
    seq: int
    ts: int
    delta: str


class Done(msgspec.Struct, tag="job.completed", tag_field="type"):
    seq: int
    ts: int
    output_text: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Body).decode


async def _events(body: Body) -> AsyncIterator[bytes]:
    request = ModelRequest(
        model="simulated",
        messages=[Message(role="user", content=body.input)],
        parameters=body.parameters,
    )
    seq = itertools.count()
    text: list[str] = []
    yield b"retry: 1000\n\n"
    async for event in SimulatedProvider().stream(request):
        if isinstance(event, TextChunk):
            text.append(event.text)
            data = _encode(Delta(seq=next(seq), ts=now_ms(), delta=event.text))
            yield b"event: text.delta\ndata: %s\n\n" % data
    done = _encode(Done(seq=next(seq), ts=now_ms(), output_text="".join(text)))
    yield b"event: job.completed\ndata: %s\n\n" % done


def create_app() -> FastAPI:
    app = FastAPI(title="Spool direct baseline")

    @app.post("/stream")
    async def stream(request: Request) -> Response:
        body = _decode(await request.body())
        return StreamingResponse(_events(body), media_type="text/event-stream")

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


@click.command()
@click.option("--port", default=8100, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def main(port: int, host: str) -> None:
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
