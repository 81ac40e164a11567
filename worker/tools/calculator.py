"""Arithmetic on decimals, parsed with `ast` and evaluated by walking the tree (never `eval`).

Allowed: decimal literals, unary + and -, binary + - * / **, parentheses. Anything else
(names, calls, attributes, subscripts, strings, ...) is refused with `CalculatorError`.
"""

import ast
import decimal
from decimal import Decimal

MAX_EXPRESSION = 1000
MAX_EXPONENT = 10_000
_CONTEXT = decimal.Context(
    prec=28,
    Emax=100_000,
    Emin=-100_000,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value is undefined."""


def evaluate(expression: str) -> Decimal:
    if len(expression) > MAX_EXPRESSION:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from exc
    with decimal.localcontext(_CONTEXT):
        try:
            return +_eval(tree.body)
        except (decimal.DivisionByZero, ZeroDivisionError) as exc:
            raise CalculatorError("division by zero") from exc
        except (decimal.InvalidOperation, decimal.Overflow, OverflowError) as exc:
            raise CalculatorError("the result is undefined or too large") from exc


def format_decimal(value: Decimal) -> str:
    """`4` for 4.0, `0.5` for 0.50, no exponent for ordinary magnitudes."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1))) if abs(value) < Decimal("1e28") else str(value)
    return format(value.normalize(), "f") if abs(value.adjusted()) < 28 else str(value)


def _eval(node: ast.expr) -> Decimal:
    match node:
        case ast.Constant(value=bool()):
            raise CalculatorError("booleans are not numbers here")
        case ast.Constant(value=int() | float() as number):
            return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return +_eval(operand)
        case ast.BinOp(left=left, op=op, right=right):
            return _binary(op, _eval(left), _eval(right))
    raise CalculatorError(f"not allowed in an expression: {type(node).__name__}")


def _binary(op: ast.operator, a: Decimal, b: Decimal) -> Decimal:
    match op:
        case ast.Add():
            return a + b
        case ast.Sub():
            return a - b
        case ast.Mult():
            return a * b
        case ast.Div():
            return a / b
        case ast.Pow():
            if abs(b) > MAX_EXPONENT:
                raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
            return a**b
    raise CalculatorError(f"operator not allowed: {type(op).__name__}")
