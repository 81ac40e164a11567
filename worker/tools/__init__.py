"""Tools the agent loop may run: the built-ins plus the user's `SPOOL_TOOLS_MODULE`."""

import functools

from spool.worker.tools.builtin import BUILTIN_TOOLS
from spool.worker.tools.registry import Tool, ToolRegistry

__all__ = ["Tool", "ToolRegistry", "build_registry", "registry_of"]


def build_registry(tools_module: str | None = None) -> ToolRegistry:
    registry = ToolRegistry()
    for fn in BUILTIN_TOOLS:
        registry.register(fn)
    if tools_module:
        registry.load_module(tools_module)
    return registry


@functools.cache
def registry_of(tools_module: str | None) -> ToolRegistry:
    """`build_registry`, once per process and module: every job reads the same registry
    (building one derives each tool's argument struct and JSON schema, ~200 µs). A module
    that fails to load is tried again by the next job (exceptions are not cached)."""
    return build_registry(tools_module)
