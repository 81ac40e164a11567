"""`anthropic:<model>` through the official SDK's Messages API (streamed, or one response
when `parameters.stream` is false)."""

from collections.abc import AsyncGenerator
from contextlib import aclosing

import anthropic

from spool.shared.settings import Settings
from spool.worker.providers.anthropic_wire import MessageSnapshot, message_events, request_body
from spool.worker.providers.base import ModelRequest, ProviderEvent, replay
from spool.worker.providers.failures import SDK_ERRORS, classify


def sdk_timeout(settings: Settings) -> anthropic.Timeout:
    """Connect bound from settings; first-token and idle bounds are the agent loop's."""
    connect = settings.provider_connect_timeout_s
    return anthropic.Timeout(None, connect=connect, write=connect, pool=connect)


class AnthropicProvider:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        body = request_body(request)
        client = anthropic.AsyncAnthropic(max_retries=0, timeout=sdk_timeout(self.settings))
        async with client:
            try:
                if request.parameters.get("stream", True) is False:
                    for event in message_events(await client.messages.create(**body)):
                        yield event
                    return
                stream = await client.messages.create(**body, stream=True)
                async with aclosing(replay(stream, MessageSnapshot())) as events:
                    async for event in events:
                        yield event
            except SDK_ERRORS as exc:
                raise classify(exc) from exc
