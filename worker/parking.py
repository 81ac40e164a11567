"""The agent loop's side of tool approval (contract §7): stopping before calls that need a
human, and taking up again once they are decided.

`park` saves the loop's state (through the run's `on_park`, before any request goes
out, so that a decision made on seeing the event finds its call), emits one
`tool.approval_requested` per waiting call and raises `Parked`. `announce_decisions`
emits each call's `tool.approval_resolved` (and, for a rejected or expired one, the
`tool.result` the model will read) and says which calls to run.
"""

from typing import TYPE_CHECKING, NoReturn

from spool.shared.ids import now_ms
from spool.shared.jobs import (
    Decision,
    LoopState,
    PendingApproval,
    ToolCallPart,
    ToolResultPart,
)
from spool.worker.providers.base import ToolCallRequest
from spool_client.events import ToolApprovalRequested, ToolApprovalResolved, ToolResult

if TYPE_CHECKING:
    from spool.worker.loop import AgentRun

TIMEOUT = Decision(approved=False, reason="timeout")


class Parked(Exception):
    """The run stopped before tool calls that wait for approval; `state` continues it."""

    def __init__(self, state: LoopState) -> None:
        super().__init__(f"{len(state.pending)} tool call(s) wait for approval")
        self.state = state


def rejection(decision: Decision) -> str:
    """What the model is told about a call a human rejected (or left undecided)."""
    if decision.reason == "timeout":
        return "The call was not run: no human approved it before its approval expired."
    why = f": {decision.reason}" if decision.reason else " (no reason given)"
    return f"The call was not run: a human rejected it{why}"


def loop_state(
    run: "AgentRun",
    step: int,
    calls: list[ToolCallPart],
    results: list[ToolResultPart],
    pending: list[PendingApproval],
) -> LoopState:
    return LoopState(
        continuation=run.continuation + 1,
        step=step,
        chain_step=run.chain_step,
        turns=run.turns,
        text=run.output_text,
        usage=run.usage,
        tokens=run.tokens,
        calls=calls,
        results=results,
        pending=pending,
        first_delta_ms=run.first_delta_ms,
        warnings=run.warnings,
        parked_at_ms=now_ms(),
    )


async def park(
    run: "AgentRun",
    step: int,
    calls: list[ToolCallPart],
    results: list[ToolResultPart],
    waiting: list[ToolCallRequest],
) -> NoReturn:
    expires_at = now_ms() + int(run.spec.approval_timeout_s * 1000)
    pending = [
        PendingApproval(
            call_id=c.call_id, name=c.name, arguments=c.arguments, expires_at=expires_at
        )
        for c in waiting
    ]
    state = loop_state(run, step, calls, results, pending)
    if run.on_park is not None:
        await run.on_park(state)
    for p in pending:
        await run.emit(
            ToolApprovalRequested(
                step=step,
                call_id=p.call_id,
                name=p.name,
                arguments=p.arguments,
                expires_at=p.expires_at,
            )
        )
    raise Parked(state)


async def announce_decisions(
    run: "AgentRun", state: LoopState, decisions: dict[str, Decision]
) -> tuple[list[ToolCallRequest], list[ToolResultPart]]:
    """The approved calls (with their edited arguments) and the rejected calls' results."""
    approved: list[ToolCallRequest] = []
    rejected: list[ToolResultPart] = []
    for p in state.pending:
        decision = decisions.get(p.call_id) or TIMEOUT
        arguments = decision.arguments if decision.arguments is not None else p.arguments
        await run.emit(
            ToolApprovalResolved(
                step=state.step,
                call_id=p.call_id,
                approved=decision.approved,
                reason=decision.reason,
                arguments=arguments,
            )
        )
        if decision.approved:
            approved.append(ToolCallRequest(p.call_id, p.name, arguments))
            continue
        output = rejection(decision)
        await run.emit(
            ToolResult(
                step=state.step, call_id=p.call_id, name=p.name, output=output, is_error=True
            )
        )
        rejected.append(ToolResultPart(p.call_id, p.name, output, is_error=True))
    return approved, rejected
