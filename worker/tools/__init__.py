"""Tools the agent loop may run: the built-ins plus the user's `SPOOL_TOOLS_MODULE`."""

from spool.worker.tools.builtin import BUILTIN_TOOLS
from spool.worker.tools.registry import Tool, ToolRegistry

__all__ = ["Tool", "ToolRegistry", "build_registry"]


def build_registry(tools_module: str | None = None) -> ToolRegistry:
    registry = ToolRegistry()
    for fn in BUILTIN_TOOLS:
        registry.register(fn)
    if tools_module:
        registry.load_module(tools_module)
    return registry
