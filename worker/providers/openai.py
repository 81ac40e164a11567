"""`openai:<model>` and named OpenAI-compatible endpoints through the official SDK's Chat
Completions API. `OPENAI_BASE_URL` / `OPENAI_API_KEY` apply to `openai:`; a named endpoint
brings its own. Streams with `include_usage`, or asks for one response when the endpoint
says `streaming = false` or `parameters.stream` is false."""

from collections.abc import AsyncGenerator
from contextlib import aclosing

import openai

from spool.shared.settings import Settings
from spool.worker.providers.base import ModelRequest, ProviderEvent, replay
from spool.worker.providers.failures import SDK_ERRORS, classify
from spool.worker.providers.openai_wire import CompletionSnapshot, completion_events, request_body


class OpenAIProvider:
    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        streaming: bool = True,
    ) -> None:
        self.settings = settings
        self.base_url = base_url
        self.api_key = api_key
        self.streaming = streaming

    def _client(self) -> openai.AsyncOpenAI:
        connect = self.settings.provider_connect_timeout_s
        timeout = openai.Timeout(None, connect=connect, write=connect, pool=connect)
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=timeout
        )

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        body = request_body(request)
        streaming = self.streaming and request.parameters.get("stream", True) is not False
        async with self._client() as client:
            try:
                if not streaming:
                    for event in completion_events(await client.chat.completions.create(**body)):
                        yield event
                    return
                stream = await client.chat.completions.create(
                    **body, stream=True, stream_options={"include_usage": True}
                )
                async with aclosing(replay(stream, CompletionSnapshot())) as events:
                    async for event in events:
                        yield event
            except SDK_ERRORS as exc:
                raise classify(exc) from exc
