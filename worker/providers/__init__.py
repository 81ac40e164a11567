"""Model providers behind one interface (`base.Provider`), chosen by `resolve`."""

import os

from spool.shared.agents import AgentsFileError, load_agents
from spool.shared.settings import Settings
from spool.worker.errors import ProviderError, UnsupportedModel
from spool.worker.providers.anthropic import AnthropicProvider
from spool.worker.providers.base import Provider
from spool.worker.providers.openai import OpenAIProvider
from spool.worker.providers.simulated import SimulatedProvider

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def resolve(model: str, settings: Settings) -> Provider:
    """The provider serving `model`: `simulated`, `anthropic:<m>`, `openai:<m>`, or
    `<endpoint>:<m>` for a named OpenAI-compatible endpoint of the agents file."""
    provider, _, name = model.partition(":")
    if provider == "simulated":
        return SimulatedProvider(settings.behind_ms, scheduled=True)
    if not name:
        raise UnsupportedModel(model)
    if provider in KEY_VARIABLES:
        if not os.environ.get(KEY_VARIABLES[provider]):
            raise ProviderError("provider_auth", f"{KEY_VARIABLES[provider]} is not set")
        return AnthropicProvider(settings) if provider == "anthropic" else OpenAIProvider(settings)
    try:
        endpoint = load_agents(settings.agents_file).endpoints.get(provider)
    except AgentsFileError as exc:
        raise ProviderError("agents_file", str(exc)) from exc
    if endpoint is None:
        raise UnsupportedModel(model)
    return OpenAIProvider(
        settings,
        base_url=endpoint.base_url,
        api_key=endpoint.api_key(),
        streaming=endpoint.streaming,
    )
