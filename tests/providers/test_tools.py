"""Pure parts of the tools: the calculator's parser and schemas from signatures."""

from decimal import Decimal
from typing import Annotated

import msgspec
import pytest

from spool.worker.errors import ToolError
from spool.worker.tools import build_registry
from spool.worker.tools.calculator import CalculatorError, evaluate, format_decimal
from spool.worker.tools.registry import Tool

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2+2", "4"),
        ("(1.5 + 2.5) * 3", "12"),
        ("2 ** 10", "1024"),
        ("0.1 + 0.2", "0.3"),
        ("10 / 4", "2.5"),
        ("-3 - -3", "0"),
        ("+(2)", "2"),
    ],
)
def test_calculator_evaluates_decimal_arithmetic(expression: str, value: str) -> None:
    assert format_decimal(evaluate(expression)) == value


@pytest.mark.parametrize(
    "expression",
    [
        "x",  # a name
        "__import__('os')",  # a call
        "abs(-1)",
        "(1).real",  # an attribute
        "[1][0]",  # a subscript
        "'a' * 3",  # a string
        "True + 1",  # a boolean
        "1 // 2",  # an operator outside the set
        "1 % 2",
        "1 if 1 else 2",
        "lambda: 1",
        "1/0",
        "9 ** 99999",
        "2 +",
    ],
)
def test_calculator_refuses_everything_but_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


def test_calculator_result_is_exact_decimal() -> None:
    assert evaluate("1/3") * 3 == Decimal("0.9999999999999999999999999999")


def test_schema_comes_from_the_signature() -> None:
    def lookup(
        city: Annotated[str, msgspec.Meta(description="where")], days: int = 1, metric: bool = True
    ) -> dict[str, int]:
        """Weather forecast.

        Longer text the model does not need."""
        return {"days": days}

    tool = Tool(lookup)
    assert tool.name == "lookup"
    assert tool.description == "Weather forecast."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "where"},
            "days": {"type": "integer", "default": 1},
            "metric": {"type": "boolean", "default": True},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert tool.bind({"city": "Oslo"}) == {"city": "Oslo", "days": 1, "metric": True}
    with pytest.raises(ToolError, match="days"):
        tool.bind({"city": "Oslo", "days": "many"})
    with pytest.raises(ToolError):
        tool.bind({"town": "Oslo"})


def test_untyped_parameters_are_refused() -> None:
    def bad(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="annotation"):
        Tool(bad)


async def test_builtin_tools_and_user_module() -> None:
    registry = build_registry("tests.fakes.user_tools")
    assert set(registry.tools) == {"calculator", "current_time", "shout"}
    assert await registry.tools["calculator"].call({"expression": "2+2"}) == "4"
    assert await registry.tools["shout"].call({"text": "hi"}) == "HI"
    assert (await registry.tools["current_time"].call({"timezone": "UTC"})).endswith("+00:00")
    with pytest.raises(ToolError, match="time zone"):
        await registry.tools["current_time"].call({"timezone": "Mars/Olympus"})
    with pytest.raises(ToolError, match="unknown tool"):
        registry.select(["calculator", "nope"])
