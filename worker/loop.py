"""The agent loop: model call, tool calls, repeat, until a final answer or `max_steps`.

Each step emits `step.started`, the model's deltas, one `tool.call` per requested call,
a `tool.result` per call, then `step.finished`. A retryable provider failure before the
step's first delta is retried after the provider's `Retry-After`, else with jittered
exponential backoff (noted in `warnings`); the run keeps its
partial state (text, usage) so that a failure or cancellation can report what was produced.
"""

import asyncio
import contextlib
from typing import assert_never

from spool.shared.agents import AgentsFileError, load_agents
from spool.shared.ids import now_ms
from spool.shared.jobs import JobSpec, Message, ThinkingPart, ToolCallPart, ToolResultPart
from spool.shared.pricing import TokenCounts, price_job
from spool.shared.settings import Settings
from spool.worker.errors import ProviderError, ToolError
from spool.worker.providers.base import (
    Finished,
    ModelRequest,
    Provider,
    ProviderEvent,
    TextChunk,
    ThinkingBlock,
    ThinkingChunk,
    ToolCallRequest,
    ToolSpec,
    UsageReport,
)
from spool.worker.providers.failures import retry_delay
from spool.worker.publisher import Publisher
from spool.worker.tools import Tool, build_registry
from spool.worker.tools.runner import run_tools
from spool_client.events import (
    Cost,
    FinishReason,
    StepFinished,
    StepStarted,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    Usage,
)

IDLE_GRANULARITY_S = 1.0


class StepOutput:
    """What one model call produced so far."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[ThinkingPart] = []
        self.calls: list[ToolCallRequest] = []
        self.usage = UsageReport(Usage())
        self.reason: FinishReason = "stop"
        self.emitted = False

    def message(self) -> Message:
        calls = [ToolCallPart(c.call_id, c.name, c.arguments) for c in self.calls]
        return Message("assistant", "".join(self.text), tool_calls=calls, thinking=self.thinking)


class AgentRun:
    def __init__(
        self,
        spec: JobSpec,
        publisher: Publisher,
        settings: Settings | None = None,
        history: list[Message] | None = None,
    ) -> None:
        self.spec = spec
        self.pub = publisher
        self.settings = settings or Settings()
        self.history = history or []
        self.turns: list[Message] = list(spec.messages)  # this job's turns, for memory
        self.text: list[str] = []
        self.usage = Usage()  # of the model calls that ended
        self.tokens = TokenCounts()
        self._live: StepOutput | None = None  # the model call under way
        self.first_delta_ms: int | None = None
        self.warnings: list[str] = []

    @property
    def output_text(self) -> str:
        return "".join(self.text)

    def partial_usage(self) -> Usage:
        """Usage so far, including the call under way (a cancelled job reports this)."""
        return self.usage + self._live.usage.usage if self._live else self.usage

    def cost(self) -> Cost | None:
        try:
            prices = load_agents(self.settings.agents_file).prices
        except AgentsFileError as exc:
            prices = {}
            self.warnings.append(f"price overrides ignored: {exc}")
        cost, warning = price_job(self.spec.model, self.tokens, prices)
        if warning:
            self.warnings.append(warning)
        return cost

    async def run(self, provider: Provider) -> FinishReason:
        tools = self._tools()
        specs = [
            ToolSpec(name=t.name, description=t.description, parameters=t.parameters)
            for t in tools.values()
        ]
        for step in range(self.spec.max_steps):
            request = ModelRequest(
                model=self.spec.model,
                messages=self.history + self.turns,
                system=self.spec.system,
                parameters=self.spec.parameters,
                tools=specs,
                step=step,
            )
            out = await self._step(provider, request)
            self.turns.append(out.message())
            if not out.calls:
                return out.reason
            results = []
            async for result in run_tools(out.calls, tools, step, self.settings.tool_timeout_s):
                await self.pub.emit(result)
                results.append(result)
            order = {c.call_id: i for i, c in enumerate(out.calls)}
            results.sort(key=lambda r: order[r.call_id])
            parts = [ToolResultPart(r.call_id, r.name, r.output, r.is_error) for r in results]
            self.turns.append(Message("user", "", tool_results=parts))
        self.warnings.append(f"stopped after max_steps={self.spec.max_steps}")
        return "length"

    def _tools(self) -> dict[str, Tool]:
        try:
            registry = build_registry(self.settings.tools_module)
            return {t.name: t for t in registry.select(self.spec.tools)}
        except ToolError as exc:
            raise ProviderError("unknown_tool", str(exc)) from exc
        except (ImportError, TypeError) as exc:
            raise ProviderError("tools_module", f"cannot load tools: {exc}") from exc

    async def _step(self, provider: Provider, request: ModelRequest) -> StepOutput:
        step = request.step
        await self.pub.emit(StepStarted(step=step))
        for attempt in range(self.settings.provider_retries + 1):
            out = self._live = StepOutput()
            try:
                await self._stream(provider, request, out)
                break
            except ProviderError as exc:
                self._count(out.usage)
                self._live = None
                if not exc.retryable or out.emitted or attempt >= self.settings.provider_retries:
                    raise
                delay = retry_delay(attempt, self.settings.provider_backoff_s, exc.retry_after_s)
                self.warnings.append(
                    f"step {step}: {exc.code} ({exc.message}); retry {attempt + 1} "
                    f"of {self.settings.provider_retries} after {delay:.2f}s"
                )
                await asyncio.sleep(delay)
        self._count(out.usage)
        self._live = None
        await self.pub.emit(
            StepFinished(step=step, finish_reason=out.reason, usage=out.usage.usage)
        )
        return out

    def _count(self, report: UsageReport) -> None:
        self.usage += report.usage
        self.tokens += TokenCounts(
            input=report.usage.input_tokens,
            output=report.usage.output_tokens,
            cache_read=report.cache_read,
            cache_write=report.cache_write,
        )

    async def _stream(self, provider: Provider, request: ModelRequest, out: StepOutput) -> None:
        """One model call, bounded by the first-token and idle-between-events timeouts.

        One timeout per call, moved forward as events arrive (at most once a second, which
        keeps the idle bound within a second and costs nothing per event)."""
        settings, loop = self.settings, asyncio.get_running_loop()
        timeout, what = settings.provider_first_token_timeout_s, "first token"
        moved = loop.time()
        try:
            async with asyncio.timeout(timeout) as guard:
                async with contextlib.aclosing(provider.stream(request)) as events:
                    async for event in events:
                        now = loop.time()
                        if what != "event" or now - moved >= IDLE_GRANULARITY_S:
                            timeout, what, moved = settings.provider_idle_timeout_s, "event", now
                            guard.reschedule(now + timeout)
                        await self._handle(request.step, event, out)
                        if loop.time() - now >= IDLE_GRANULARITY_S:  # we were slow, not it
                            moved = loop.time()
                            guard.reschedule(moved + timeout)
        except TimeoutError as exc:
            message = f"no {what} from the provider within {timeout:g}s"
            raise ProviderError("provider_timeout", message) from exc

    async def _handle(self, step: int, event: ProviderEvent, out: StepOutput) -> None:
        match event:
            case TextChunk(text):
                self._delta(out)
                out.text.append(text)
                self.text.append(text)
                await self.pub.emit(TextDelta(step=step, delta=text))
            case ThinkingChunk(text):
                self._delta(out)
                await self.pub.emit(ThinkingDelta(step=step, delta=text))
            case ThinkingBlock(text, signature):
                out.thinking.append(ThinkingPart(text, signature))
            case ToolCallRequest(call_id, name, arguments):
                self._delta(out)
                out.calls.append(event)
                await self.pub.emit(
                    ToolCall(step=step, call_id=call_id, name=name, arguments=arguments)
                )
            case UsageReport():
                out.usage = event
            case Finished(finish):
                out.reason = finish
            case _:
                assert_never(event)

    def _delta(self, out: StepOutput) -> None:
        out.emitted = True
        if self.first_delta_ms is None:
            self.first_delta_ms = now_ms()
