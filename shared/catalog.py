"""The models a deployment can run, as data (`GET /v1/models`): what each supports and
costs. The built-in providers' models come from the price table (`shared.pricing`); the
agents file adds its endpoints' models (those its agents and prices name) and its prices.

Provider credentials are the workers' business (the API may not hold them), so a listed
`anthropic:` or `openai:` model runs only where the workers have that provider's key.
"""

import msgspec

from spool.shared.agents import AgentsFile
from spool.shared.pricing import PRICES, Price, lookup

# Built-in models that stream reasoning (`thinking.delta`): Anthropic's extended thinking.
_NO_THINKING = ("anthropic:claude-3-5-haiku",)


class ModelPrice(msgspec.Struct, kw_only=True):
    input: float
    output: float
    currency: str = "USD"
    per: str = "1M tokens"


class ModelInfo(msgspec.Struct, kw_only=True):
    model: str
    provider: str
    streaming: bool = True
    thinking: bool = False
    tools: bool = True
    price: ModelPrice | None = None


class ModelList(msgspec.Struct, kw_only=True):
    models: list[ModelInfo]


def _price(price: Price | None) -> ModelPrice | None:
    return None if price is None else ModelPrice(input=price.input, output=price.output)


def _thinking(model: str) -> bool:
    if model == "simulated":
        return True  # `parameters.thinking` streams as thinking
    return model.startswith("anthropic:") and not model.startswith(_NO_THINKING)


def models(agents: AgentsFile) -> list[ModelInfo]:
    """Every model of the built-in providers' table and of the agents file, sorted."""
    names = set(PRICES) | set(agents.prices)
    names |= {a.model for a in agents.agents.values() if a.model}
    out: list[ModelInfo] = []
    for name in sorted(names):
        provider = name.partition(":")[0]
        if provider not in agents.providers():
            continue
        endpoint = agents.endpoints.get(provider)
        out.append(
            ModelInfo(
                model=name,
                provider=provider,
                streaming=endpoint.streaming if endpoint is not None else True,
                thinking=_thinking(name),
                tools=True,
                price=_price(lookup(name, agents.prices)),
            )
        )
    return out
