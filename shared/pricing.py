"""Cost in USD from token counts and a price table (USD per million tokens).

The table covers common models; the agents file's `[prices."provider:model"]` tables
override or extend it. A model with no price gets `cost: null` and a warning.
"""

from collections.abc import Mapping

import msgspec

from spool_client.events import Cost

PER_MILLION = 1_000_000


class Price(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    input: float
    output: float
    cache_read: float | None = None  # default: the input price
    cache_write: float | None = None  # default: the input price


class TokenCounts(msgspec.Struct, kw_only=True):
    """A call's tokens. `input` counts every prompt token, cached ones included."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: "TokenCounts") -> "TokenCounts":
        return TokenCounts(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
        )


def _p(
    input: float, output: float, cache_read: float | None = None, cache_write: float | None = None
) -> Price:
    return Price(input=input, output=output, cache_read=cache_read, cache_write=cache_write)


# Public list prices, USD per million tokens.
PRICES: dict[str, Price] = {
    "simulated": _p(0.0, 0.0),
    "anthropic:claude-opus-4-1": _p(15.0, 75.0, 1.5, 18.75),
    "anthropic:claude-opus-4-0": _p(15.0, 75.0, 1.5, 18.75),
    "anthropic:claude-sonnet-4-5": _p(3.0, 15.0, 0.3, 3.75),
    "anthropic:claude-sonnet-4-0": _p(3.0, 15.0, 0.3, 3.75),
    "anthropic:claude-3-7-sonnet-latest": _p(3.0, 15.0, 0.3, 3.75),
    "anthropic:claude-haiku-4-5": _p(1.0, 5.0, 0.1, 1.25),
    "anthropic:claude-3-5-haiku-latest": _p(0.8, 4.0, 0.08, 1.0),
    "openai:gpt-4o": _p(2.5, 10.0, 1.25),
    "openai:gpt-4o-mini": _p(0.15, 0.6, 0.075),
    "openai:gpt-4.1": _p(2.0, 8.0, 0.5),
    "openai:gpt-4.1-mini": _p(0.4, 1.6, 0.1),
    "openai:gpt-4.1-nano": _p(0.1, 0.4, 0.025),
    "openai:o3-mini": _p(1.1, 4.4, 0.55),
    "openai:o4-mini": _p(1.1, 4.4, 0.275),
}


def lookup(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`; `simulated:<anything>` is free like `simulated`."""
    table = {**PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    return table["simulated"] if model.startswith("simulated:") else None


def cost_of(price: Price, tokens: TokenCounts) -> Cost:
    uncached = max(0, tokens.input - tokens.cache_read - tokens.cache_write)
    read = price.input if price.cache_read is None else price.cache_read
    write = price.input if price.cache_write is None else price.cache_write
    input_cost = (
        uncached * price.input + tokens.cache_read * read + tokens.cache_write * write
    ) / PER_MILLION
    output_cost = tokens.output * price.output / PER_MILLION
    return Cost(
        input=round(input_cost, 8),
        output=round(output_cost, 8),
        total=round(input_cost + output_cost, 8),
    )


def price_job(
    model: str, tokens: TokenCounts, overrides: Mapping[str, Price] | None = None
) -> tuple[Cost | None, str | None]:
    """The job's cost, or `(None, warning)` when the model has no price."""
    price = lookup(model, overrides)
    if price is None:
        return None, f"no price known for model {model!r}: cost is null"
    return cost_of(price, tokens), None
