"""Tools: typed Python functions whose JSON schemas come from their signatures.

A tool is a function (sync or async) with annotated keyword parameters returning a
value that becomes the `tool.result` output (a `str` as is, anything else as JSON).
The first paragraph of its docstring is the description the model sees; a parameter
may carry one with `Annotated[str, msgspec.Meta(description=...)]`.
"""

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, get_type_hints

import msgspec

from spool.worker.errors import ToolError

ToolFunction = Callable[..., Any]


class Tool:
    def __init__(self, fn: ToolFunction, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        self.arguments_type = arguments_struct(fn, self.name)
        self.parameters = json_schema(self.arguments_type)

    def bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments, or `ToolError` naming what is wrong."""
        try:
            args = msgspec.convert(arguments, self.arguments_type)
        except msgspec.ValidationError as exc:
            raise ToolError(f"invalid arguments for {self.name}: {exc}") from exc
        return msgspec.structs.asdict(args)

    async def call(self, arguments: dict[str, Any]) -> str:
        kwargs = self.bind(arguments)
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**kwargs)
        else:
            result = await asyncio.to_thread(self.fn, **kwargs)
        return result if isinstance(result, str) else msgspec.json.encode(result).decode()


def arguments_struct(fn: ToolFunction, name: str) -> type[msgspec.Struct]:
    """A Struct whose fields are `fn`'s parameters (names, types, defaults)."""
    hints = get_type_hints(fn, include_extras=True)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args/**kwargs cannot be described to a model")
        if param.name not in hints:
            raise TypeError(f"tool {name}: parameter {param.name!r} needs a type annotation")
        if param.default is param.empty:
            fields.append((param.name, hints[param.name]))
        else:
            fields.append((param.name, hints[param.name], param.default))
    return msgspec.defstruct(f"{name}_arguments", fields, forbid_unknown_fields=True, kw_only=True)


def json_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The object schema of `struct` with any nested definitions inlined under `$defs`."""
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    name = ref["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = dict(components.pop(name))
    schema.pop("title", None)
    if components:
        schema["$defs"] = components
    return schema


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self.tools = {t.name: t for t in tools}

    def register(self, fn: ToolFunction, name: str | None = None) -> Tool:
        tool = Tool(fn, name)
        self.tools[tool.name] = tool
        return tool

    def select(self, names: Iterable[str]) -> list[Tool]:
        """The named tools, or `ToolError` listing the unknown names."""
        names = list(names)
        unknown = [n for n in names if n not in self.tools]
        if unknown:
            known = ", ".join(sorted(self.tools)) or "none"
            raise ToolError(f"unknown tool(s) {', '.join(unknown)} (known: {known})")
        return [self.tools[n] for n in names]

    def load_module(self, path: str) -> None:
        """Register the functions in module `path`'s `TOOLS` list (user tools)."""
        module = importlib.import_module(path)
        functions = getattr(module, "TOOLS", None)
        if not isinstance(functions, list | tuple):
            raise TypeError(f"tools module {path} has no TOOLS list")
        for fn in functions:
            self.register(fn)
