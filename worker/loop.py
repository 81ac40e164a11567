"""The agent loop: model call, tool calls, repeat, until a final answer or `max_steps`.

Each step emits `step.started`, the model's deltas, one `tool.call` per requested call,
a `tool.result` per call, then `step.finished`. The run keeps its partial state (text,
usage) so that a failure or cancellation can still report what was produced.
"""

from typing import assert_never

from shared.events import (
    FinishReason,
    StepFinished,
    StepStarted,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from shared.ids import now_ms
from shared.jobs import JobSpec, Message
from worker.providers.base import (
    Finished,
    ModelRequest,
    Provider,
    TextChunk,
    ThinkingChunk,
    ToolCallRequest,
    UsageReport,
)
from worker.publisher import Publisher


class AgentRun:
    def __init__(self, spec: JobSpec, publisher: Publisher) -> None:
        self.spec = spec
        self.pub = publisher
        self.text: list[str] = []
        self.finished_usage = Usage()  # of the steps that ended
        self.step_usage = Usage()  # the running step's latest (cumulative) report
        self.first_delta_ms: int | None = None
        self.warnings: list[str] = []

    @property
    def output_text(self) -> str:
        return "".join(self.text)

    @property
    def usage(self) -> Usage:
        """Usage so far, including the running step's (so a cancel reports partial usage)."""
        return self.finished_usage + self.step_usage

    async def run(self, provider: Provider) -> FinishReason:
        messages = list(self.spec.messages)
        for step in range(self.spec.max_steps):
            reason, calls = await self._step(provider, step, messages)
            if not calls:
                return reason
            messages += await self._run_tools(step, calls)
        self.warnings.append(f"stopped after max_steps={self.spec.max_steps}")
        return "length"

    async def _step(
        self, provider: Provider, step: int, messages: list[Message]
    ) -> tuple[FinishReason, list[ToolCallRequest]]:
        await self.pub.emit(StepStarted(step=step))
        request = ModelRequest(
            model=self.spec.model,
            messages=messages,
            system=self.spec.system,
            parameters=self.spec.parameters,
            step=step,
        )
        reason: FinishReason = "stop"
        self.step_usage = Usage()
        calls: list[ToolCallRequest] = []
        async for event in provider.stream(request):
            match event:
                case TextChunk(text):
                    self._first_delta()
                    self.text.append(text)
                    await self.pub.emit(TextDelta(step=step, delta=text))
                case ThinkingChunk(text):
                    self._first_delta()
                    await self.pub.emit(ThinkingDelta(step=step, delta=text))
                case ToolCallRequest(call_id, name, arguments):
                    calls.append(event)
                    await self.pub.emit(
                        ToolCall(step=step, call_id=call_id, name=name, arguments=arguments)
                    )
                case UsageReport(usage):
                    self.step_usage = usage
                case Finished(finish):
                    reason = finish
                case _:
                    assert_never(event)
        step_usage, self.step_usage = self.step_usage, Usage()
        self.finished_usage += step_usage
        await self.pub.emit(StepFinished(step=step, finish_reason=reason, usage=step_usage))
        return reason, calls

    async def _run_tools(self, step: int, calls: list[ToolCallRequest]) -> list[Message]:
        """No tools are registered yet: every call answers with an error result."""
        results = []
        for call in calls:
            output = f"tool {call.name!r} is not available"
            await self.pub.emit(
                ToolResult(
                    step=step, call_id=call.call_id, name=call.name, output=output, is_error=True
                )
            )
            results.append(Message(role="user", content=f"[{call.name} error] {output}"))
        return results

    def _first_delta(self) -> None:
        if self.first_delta_ms is None:
            self.first_delta_ms = now_ms()
