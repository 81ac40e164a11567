"""Model providers behind one interface (`base.Provider`), chosen by `resolve`."""

from worker.errors import UnsupportedModel
from worker.providers.base import Provider
from worker.providers.simulated import SimulatedProvider


def resolve(model: str) -> Provider:
    """The provider serving `model` (`simulated`, `anthropic:<m>`, `openai:<m>`, ...)."""
    if model == "simulated" or model.startswith("simulated:"):
        return SimulatedProvider()
    raise UnsupportedModel(model)
