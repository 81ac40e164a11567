"""A job's model work: one agent loop, or a chain of them (contract §8).

A chain runs its steps in order, each an agent loop of its own whose events carry
`chain_step`; step i's template is rendered with the job's variables and `{previous}`,
step i-1's output. Each finished step is saved in the job record (`chain_done`), so a job
that is run again after a worker died continues at the first unfinished step: what was
paid for once is not paid for twice. The job's output is the last step's output; its
usage and cost are the sums over the steps.
"""

from collections.abc import Awaitable, Callable

import msgspec

from spool.shared.jobs import ChainStepDone, Decision, JobSpec, LoopState, Message
from spool.shared.settings import Settings
from spool.shared.templates import PREVIOUS, render
from spool.worker.loop import AgentRun
from spool.worker.providers.base import Provider
from spool.worker.publisher import Publisher
from spool_client.events import Cost, FinishReason, Usage

SaveSteps = Callable[[list[ChainStepDone]], Awaitable[None]]
ProviderFor = Callable[[str], Provider]


def add_costs(costs: list[Cost | None]) -> Cost | None:
    """The sum of the costs (None if any is unknown)."""
    if any(c is None for c in costs) or not costs:
        return None
    known = [c for c in costs if c is not None]
    return Cost(
        input=round(sum(c.input for c in known), 8),
        output=round(sum(c.output for c in known), 8),
        total=round(sum(c.total for c in known), 8),
        currency=known[0].currency,
    )


def _sum_usage(usages: list[Usage]) -> Usage:
    total = Usage()
    for u in usages:
        total += u
    return total


class Generation:
    def __init__(
        self,
        spec: JobSpec,
        pub: Publisher,
        settings: Settings,
        history: list[Message],
        done: list[ChainStepDone],
        save: SaveSteps,
        on_park: Callable[[LoopState], Awaitable[None]] | None = None,
        continuation: int = 0,
    ) -> None:
        self.spec = spec
        self.pub = pub
        self.settings = settings
        self.history = history
        self.done = list(done) if spec.chain else []
        self._save = save
        self._on_park = on_park
        self._first_delta_ms: int | None = None
        self.current = self._loop(len(self.done) if spec.chain else None, continuation)

    def _loop(self, chain_step: int | None, continuation: int) -> AgentRun:
        spec = self.spec
        if chain_step is not None:
            step = spec.chain[chain_step]
            variables = dict(spec.variables)
            if chain_step > 0:
                variables[PREVIOUS] = self.done[chain_step - 1].output_text
            spec = msgspec.structs.replace(
                spec,
                model=step.model,
                system=step.system,
                tools=step.tools,
                parameters=step.parameters,
                messages=[Message(role="user", content=render(step.template, variables))],
                chain=[],
            )
        run = AgentRun(spec, self.pub, self.settings, self.history, chain_step)
        run.continuation = continuation
        run.on_park = self._on_park
        return run

    # -- what the job reports ------------------------------------------------------

    @property
    def output_text(self) -> str:
        return self.current.output_text

    def _live(self) -> list[AgentRun]:
        """The loop under way, unless it is the finished chain's last step (in `done`)."""
        finished = self.spec.chain and len(self.done) == len(self.spec.chain)
        return [] if finished else [self.current]

    @property
    def usage(self) -> Usage:
        return _sum_usage([d.usage for d in self.done] + [r.usage for r in self._live()])

    def partial_usage(self) -> Usage:
        return _sum_usage([d.usage for d in self.done] + [r.partial_usage() for r in self._live()])

    def cost(self, partial: bool = False) -> Cost | None:
        return add_costs([d.cost for d in self.done] + [r.cost(partial) for r in self._live()])

    @property
    def warnings(self) -> list[str]:
        return self.current.warnings

    @property
    def first_delta_ms(self) -> int | None:
        return self._first_delta_ms or self.current.first_delta_ms

    @property
    def stop_reason(self) -> str | None:
        return self.current.stop_reason

    def turns(self) -> list[Message]:
        """What the session remembers of this job."""
        if not self.spec.chain:
            return self.current.turns
        first = self.done[0].input if self.done else self.current.spec.messages[0].content
        return [Message("user", first), Message("assistant", self.output_text)]

    # -- running -------------------------------------------------------------------

    async def run(
        self,
        provider_for: ProviderFor,
        parked: LoopState | None = None,
        decisions: dict[str, Decision] | None = None,
    ) -> FinishReason:
        """Run (or continue a parked run) to the end; raises `Parked` to wait again."""
        if parked is not None and parked.chain_step == self.current.chain_step:
            self.current.restore(parked)
            provider = provider_for(self.current.spec.model)
            reason = await self.current.resume(provider, parked, decisions or {})
        else:
            reason = await self.current.run(provider_for(self.current.spec.model))
        while self.spec.chain:
            self.done.append(
                ChainStepDone(
                    input=self.current.spec.messages[0].content,
                    output_text=self.current.output_text,
                    usage=self.current.usage,
                    cost=self.current.cost(),
                    stop_reason=self.current.stop_reason,
                    finish_reason=reason,
                )
            )
            await self._save(self.done)
            if len(self.done) == len(self.spec.chain):
                break
            previous = self.current
            self._first_delta_ms = self._first_delta_ms or previous.first_delta_ms
            self.current = self._loop(len(self.done), previous.continuation)
            self.current.warnings = previous.warnings
            reason = await self.current.run(provider_for(self.current.spec.model))
        return reason
