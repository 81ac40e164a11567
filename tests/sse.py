"""A strict reader of the SSE wire format, so tests check exactly what clients receive."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        assert self.data is not None
        value: dict[str, Any] = json.loads(self.data)
        return value


async def frames(response: httpx.Response, multiline: bool = False) -> AsyncIterator[Frame]:
    """Parse `text/event-stream` line by line; yields one Frame per blank-line-terminated block.
    Spool's own frames have one `data:` line; with `multiline`, several join with `\n`."""
    frame = Frame()
    async for line in response.aiter_lines():
        if line == "":
            if frame != Frame():
                yield frame
            frame = Frame()
            continue
        name, _, value = line.partition(": ") if ": " in line else (line.rstrip(":"), "", "")
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
        elif name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        elif name == "data":
            if frame.data is not None and multiline:
                frame.data += "\n" + value
                continue
            assert frame.data is None, "data must be one line of JSON"
            frame.data = value
        elif name == "retry":
            frame.retry = int(value)
        else:
            raise AssertionError(f"unexpected SSE line {line!r}")
    if frame != Frame():
        yield frame
