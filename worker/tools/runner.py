"""Running one step's tool calls: concurrently, each under a timeout, errors as results."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from spool.worker.errors import ToolError
from spool.worker.providers.base import ToolCallRequest
from spool.worker.tools.registry import Tool
from spool_client.events import ToolResult

log = logging.getLogger(__name__)


async def call_tool(
    call: ToolCallRequest, tools: dict[str, Tool], step: int, timeout_s: float
) -> ToolResult:
    started = time.monotonic()
    output, is_error = "", True
    tool = tools.get(call.name)
    try:
        if tool is None:
            raise ToolError(f"tool {call.name!r} is not available")
        async with asyncio.timeout(timeout_s):
            output, is_error = await tool.call(call.arguments), False
    except ToolError as exc:
        output = str(exc)
    except TimeoutError:
        output = f"tool {call.name!r} timed out after {timeout_s:g}s"
    except Exception as exc:  # a user tool's bug must not fail the job
        log.exception("tool %s failed", call.name)
        output = f"tool {call.name!r} failed: {type(exc).__name__}: {exc}"
    return ToolResult(
        step=step,
        call_id=call.call_id,
        name=call.name,
        output=output,
        is_error=is_error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def run_tools(
    calls: list[ToolCallRequest], tools: dict[str, Tool], step: int, timeout_s: float
) -> AsyncIterator[ToolResult]:
    """Results in the order the calls finish; unfinished calls are cancelled on exit."""
    tasks = [asyncio.create_task(call_tool(c, tools, step, timeout_s)) for c in calls]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
