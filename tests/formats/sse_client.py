"""Reading a formatted SSE response in tests: frames with their ids, cut where asked."""

import httpx

from tests.sse import Frame, frames

Key = tuple[str | None, str | None, str | None]


async def read_frames(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    stop_after_ids: int | None = None,
    **kwargs: object,
) -> tuple[httpx.Response, list[Frame]]:
    """The response and its data frames; with `stop_after_ids`, the connection is closed
    right after that many frames with an `id:` (a client that drops mid-stream)."""
    out: list[Frame] = []
    ids = 0
    async with http.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        if response.status_code != 200:
            await response.aread()
            return response, out
        async for frame in frames(response, multiline=True):
            if frame.data is None:
                continue
            out.append(frame)
            ids += frame.id is not None
            if stop_after_ids is not None and ids >= stop_after_ids:
                break
    return response, out


def keys(frames: list[Frame]) -> list[Key]:
    return [(f.id, f.event, f.data) for f in frames]
