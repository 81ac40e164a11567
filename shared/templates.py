"""Prompt templates (`template` + `variables`, and chain steps): `{name}` placeholders,
`{{` and `}}` for literal braces. Rendering is strict: a placeholder without a value, or a
brace that is neither doubled nor part of a placeholder, is an error naming it."""

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from spool.shared.errors import SpoolError

PREVIOUS = "previous"  # a chain step's placeholder for the previous step's output
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


class TemplateError(SpoolError):
    """A template cannot be rendered: `code` is `missing_variable` or `invalid_template`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def placeholders(template: str) -> list[str]:
    """The variable names `template` uses, in order of first use (raises on a stray brace)."""
    names: list[str] = []
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        if match.group(0) in ("{", "}"):
            raise TemplateError(
                "invalid_template",
                f"stray {match.group(0)!r} at position {match.start()} of the template "
                "(write {{ or }} for a literal brace)",
            )
        if name is not None and name not in names:
            names.append(name)
    return names


def check(template: str, available: Iterable[str]) -> None:
    """Raise `TemplateError` naming the first placeholder not in `available`."""
    have = set(available)
    missing = [n for n in placeholders(template) if n not in have]
    if missing:
        raise TemplateError(
            "missing_variable",
            f"the template uses {{{missing[0]}}} but `variables` has no {missing[0]!r}"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""),
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def render(template: str, variables: Mapping[str, Any]) -> str:
    """`template` with every placeholder replaced by its variable's text."""
    check(template, variables)

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return _text(variables[match.group(1)])

    return _TOKEN.sub(one, template)
