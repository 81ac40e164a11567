"""The built-in tools: `calculator` and `current_time`."""

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from spool.worker.errors import ToolError
from spool.worker.tools.calculator import CalculatorError, evaluate, format_decimal


def calculator(
    expression: Annotated[
        str, msgspec.Meta(description="e.g. (2 + 3) * 1.5 ** 2; numbers, + - * / ** and ( )")
    ],
) -> str:
    """Evaluate an arithmetic expression on decimal numbers exactly."""
    try:
        return format_decimal(evaluate(expression))
    except CalculatorError as exc:
        raise ToolError(str(exc)) from exc


def current_time(
    timezone: Annotated[str, msgspec.Meta(description="IANA name, e.g. Europe/Paris")] = "UTC",
) -> str:
    """The current date and time in a time zone, ISO 8601."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {timezone!r}") from exc
    return datetime.now(zone).isoformat(timespec="seconds")


BUILTIN_TOOLS = (calculator, current_time)
