"""The agent loop: model call, tool calls, repeat, until a final answer or `max_steps`.

Each step emits `step.started`, the model's deltas (`tool.call.delta`s as a call's
arguments stream), one `tool.call` per requested call, a `tool.result` per call, then
`step.finished`. A retryable provider failure before the step's first delta is retried
after the provider's `Retry-After`, else with jittered exponential backoff (noted in
`warnings`); the run keeps its partial state (text, usage) so that a failure or
cancellation can report what was produced.

Calls that need a human's approval (`require_approval`) end the run with `Parked`: the
calls that need none have run, `tool.approval_requested` is out, and `Parked.state` holds
everything any worker needs to continue later (`AgentRun.resume`).
"""

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import assert_never

import msgspec

from spool.shared.agents import AgentsFileError, load_agents
from spool.shared.ids import now_ms
from spool.shared.jobs import (
    Decision,
    JobSpec,
    LoopState,
    Message,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from spool.shared.pricing import TokenCounts, price_job
from spool.shared.settings import Settings
from spool.worker.errors import ProviderError, ToolError
from spool.worker.parking import announce_decisions, park
from spool.worker.providers.base import (
    Chunk,
    Finished,
    ModelRequest,
    Paced,
    Provider,
    ProviderEvent,
    TextChunk,
    ThinkingBlock,
    ThinkingChunk,
    ToolCallChunk,
    ToolCallRequest,
    ToolSpec,
    UsageReport,
)
from spool.worker.providers.failures import retry_delay
from spool.worker.publisher import Publisher
from spool.worker.tools import Tool, registry_of
from spool.worker.tools.runner import run_tools
from spool_client.events import (
    Cost,
    FinishReason,
    StepEvent,
    StepFinished,
    StepStarted,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
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
        self.stop_reason: str | None = None
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
        chain_step: int | None = None,
    ) -> None:
        self.spec = spec
        self.pub = publisher
        self.settings = settings or Settings()
        self.history = history or []
        self.chain_step = chain_step
        self.turns: list[Message] = list(spec.messages)  # this job's turns, for memory
        self.text: list[str] = []
        self.usage = Usage()  # of the model calls that ended
        self.tokens = TokenCounts()
        self._live: StepOutput | None = None  # the model call under way
        self.first_delta_ms: int | None = None
        self.warnings: list[str] = []
        self.stop_reason: str | None = None  # the provider's, of the last model call
        self.continuation = 0  # how many times the job parked before this run
        self.on_park: Callable[[LoopState], Awaitable[None]] | None = None

    async def emit(self, event: StepEvent) -> None:
        event.chain_step = self.chain_step
        await self.pub.emit(event)

    @property
    def output_text(self) -> str:
        return "".join(self.text)

    def partial_usage(self) -> Usage:
        """Usage so far, including the call under way (a cancelled job reports this)."""
        return self.usage + self._live.usage.usage if self._live else self.usage

    def partial_tokens(self) -> TokenCounts:
        live = self._live.usage if self._live else None
        if live is None:
            return self.tokens
        return self.tokens + TokenCounts(
            input=live.usage.input_tokens,
            output=live.usage.output_tokens,
            cache_read=live.cache_read,
            cache_write=live.cache_write,
        )

    def cost(self, partial: bool = False) -> Cost | None:
        """The cost of the tokens used (with `partial`, the call under way's too)."""
        try:
            prices = load_agents(self.settings.agents_file).prices
        except AgentsFileError as exc:
            prices = {}
            self.warnings.append(f"price overrides ignored: {exc}")
        tokens = self.partial_tokens() if partial else self.tokens
        cost, warning = price_job(self.spec.model, tokens, prices)
        if warning and warning not in self.warnings:
            self.warnings.append(warning)
        return cost

    async def run(self, provider: Provider, first_step: int = 0) -> FinishReason:
        tools = self._tools()
        specs = [
            ToolSpec(name=t.name, description=t.description, parameters=t.parameters)
            for t in tools.values()
        ]
        for step in range(first_step, self.spec.max_steps):
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
            await self._run_calls(out.calls, tools, step)
        self.warnings.append(f"stopped after max_steps={self.spec.max_steps}")
        return "length"

    async def _call_tools(
        self, calls: list[ToolCallRequest], tools: dict[str, Tool], step: int
    ) -> list[ToolResultPart]:
        parts = []
        async for result in run_tools(calls, tools, step, self.settings.tool_timeout_s):
            await self.emit(result)
            parts.append(
                ToolResultPart(result.call_id, result.name, result.output, result.is_error)
            )
        return parts

    def _answer(self, calls: list[ToolCallPart], results: list[ToolResultPart]) -> None:
        """The user turn carrying every call's result, in the order the model asked."""
        order = {c.call_id: i for i, c in enumerate(calls)}
        results = sorted(results, key=lambda r: order.get(r.call_id, len(order)))
        self.turns.append(Message("user", "", tool_results=results))

    async def _run_calls(
        self, calls: list[ToolCallRequest], tools: dict[str, Tool], step: int
    ) -> None:
        waiting = [c for c in calls if self.spec.needs_approval(c.name)]
        results = await self._call_tools([c for c in calls if c not in waiting], tools, step)
        parts = [ToolCallPart(c.call_id, c.name, c.arguments) for c in calls]
        if waiting:
            await park(self, step, parts, results, waiting)  # raises Parked
        self._answer(parts, results)

    def restore(self, state: LoopState) -> None:
        """Take up a parked run's state (before `resume`)."""
        self.turns = list(state.turns)
        self.text = [state.text] if state.text else []
        self.usage = state.usage
        self.tokens = state.tokens
        self.first_delta_ms = state.first_delta_ms
        self.warnings = list(state.warnings)
        self.continuation = state.continuation

    async def resume(
        self, provider: Provider, state: LoopState, decisions: dict[str, Decision]
    ) -> FinishReason:
        """Continue a parked run: each pending call decided (undecided ones as `timeout`),
        approved calls run with their (possibly edited) arguments, then the loop goes on."""
        approved, rejected = await announce_decisions(self, state, decisions)
        results = [*state.results, *rejected]
        results += await self._call_tools(approved, self._tools(), state.step)
        edited = {c.call_id: ToolCallPart(c.call_id, c.name, c.arguments) for c in approved}
        calls = [edited.get(c.call_id, c) for c in state.calls]
        if self.turns and self.turns[-1].role == "assistant":  # the calls as they were run
            self.turns[-1] = msgspec.structs.replace(self.turns[-1], tool_calls=calls)
        self._answer(calls, results)
        return await self.run(provider, state.step + 1)

    def _tools(self) -> dict[str, Tool]:
        try:
            registry = registry_of(self.settings.tools_module)
            return {t.name: t for t in registry.select(self.spec.tools)}
        except ToolError as exc:
            raise ProviderError("unknown_tool", str(exc)) from exc
        except (ImportError, TypeError) as exc:
            raise ProviderError("tools_module", f"cannot load tools: {exc}") from exc

    async def _step(self, provider: Provider, request: ModelRequest) -> StepOutput:
        step = request.step
        await self.emit(StepStarted(step=step))
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
        self.stop_reason = out.stop_reason
        await self.emit(
            StepFinished(
                step=step,
                finish_reason=out.reason,
                usage=out.usage.usage,
                stop_reason=out.stop_reason,
            )
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
        keeps the idle bound within a second and costs nothing per event). Chunks that come
        through the scheduler (`Paced`) move it the same way; their usage is read from the
        run when it ends, however it ends."""
        settings, loop = self.settings, asyncio.get_running_loop()
        timeout, what = settings.provider_first_token_timeout_s, "first token"
        move_at = -math.inf  # when the timeout is next moved: at the first event
        step, pub = request.step, self.pub

        def arrived() -> float:
            nonlocal timeout, what, move_at
            now = loop.time()
            if now >= move_at:
                timeout, what = settings.provider_idle_timeout_s, "event"
                move_at = now + IDLE_GRANULARITY_S
                guard.reschedule(now + timeout)
            return now

        def paced(chunk: Chunk) -> None:  # per token: the fewest calls that do it
            if loop.time() >= move_at:
                arrived()
            self._chunk(step, chunk, out)

        try:
            async with asyncio.timeout(timeout) as guard:
                async with contextlib.aclosing(provider.stream(request)) as events:
                    async for event in events:
                        now = arrived()
                        if type(event) is Paced:
                            try:
                                await event.run(paced, pub.has_room)
                            finally:
                                out.usage = event.usage()
                            continue
                        await self._handle(step, event, out)
                        if loop.time() - now >= IDLE_GRANULARITY_S:  # we were slow, not it
                            move_at = loop.time() + IDLE_GRANULARITY_S
                            guard.reschedule(loop.time() + timeout)
        except TimeoutError as exc:
            message = f"no {what} from the provider within {timeout:g}s"
            raise ProviderError("provider_timeout", message) from exc

    def _chunk(self, step: int, chunk: Chunk, out: StepOutput) -> None:
        """Emit a text or thinking chunk's delta (the publisher has room) and record it. The
        publisher raises `OutputLimit` before the event if the job may emit no more: that
        text never counts as output."""
        text = chunk.text
        if type(chunk) is TextChunk:
            self.pub.emit_nowait(TextDelta(step=step, delta=text, chain_step=self.chain_step))
            out.text.append(text)
            self.text.append(text)
        else:
            self.pub.emit_nowait(ThinkingDelta(step=step, delta=text, chain_step=self.chain_step))
        if not out.emitted:
            self._delta(out)
        if chunk.usage is not None:
            out.usage = chunk.usage

    async def _handle(self, step: int, event: ProviderEvent, out: StepOutput) -> None:
        match event:
            case TextChunk() | ThinkingChunk():
                await self.pub.room()
                self._chunk(step, event, out)
            case ThinkingBlock(text, signature):
                out.thinking.append(ThinkingPart(text, signature))
            case ToolCallChunk(call_id, name, piece):
                self._delta(out)
                await self.emit(
                    ToolCallDelta(step=step, call_id=call_id, name=name, arguments_delta=piece)
                )
            case ToolCallRequest(call_id, name, arguments):
                self._delta(out)
                out.calls.append(event)
                await self.emit(
                    ToolCall(step=step, call_id=call_id, name=name, arguments=arguments)
                )
            case UsageReport():
                out.usage = event
            case Finished(finish, stop_reason):
                out.reason = finish
                out.stop_reason = stop_reason
            case Paced():  # handled by `_stream`
                raise AssertionError("a Paced event reached _handle")
            case _:
                assert_never(event)

    def _delta(self, out: StepOutput) -> None:
        out.emitted = True
        if self.first_delta_ms is None:
            self.first_delta_ms = now_ms()
