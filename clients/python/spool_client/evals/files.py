"""Eval suites as TOML files (`spool eval CASES.toml`).

    [defaults]                      # optional: job fields every case starts from
    model = "simulated"

    [[cases]]
    name = "fast-response"
    user_message = "What is 2 + 2?"   # or input, or template + variables, or chain
    parameters = { text = "It is 4." }
    assertions = [{ type = "stream_contains", text = "4" }]

A case's keys other than `name` and `assertions` are `POST /v1/jobs` fields, sent as
given (`user_message` is `input`); `parameters` merge over the defaults' key by key.
"""

import tomllib
from pathlib import Path
from typing import Any

from spool_client.evals.assertions import StreamingAssertion, from_spec
from spool_client.evals.suite import StreamingEvalCase

JOB_SOURCES = ("input", "user_message", "template", "chain")


class EvalFileError(ValueError):
    """The file cannot be read as an eval suite; the message names the place and the fault."""


def load_cases(path: str | Path) -> list[StreamingEvalCase]:
    """The cases of a TOML suite file; `EvalFileError` if it is missing or malformed."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"{path}: not valid TOML: {exc}") from None
    return parse_cases(document, str(path))


def parse_cases(document: dict[str, Any], where: str = "suite") -> list[StreamingEvalCase]:
    defaults = document.get("defaults", {})
    cases = document.get("cases")
    if not isinstance(defaults, dict):
        raise EvalFileError(f"{where}: [defaults] must be a table")
    if not isinstance(cases, list) or not cases:
        raise EvalFileError(f"{where}: no cases: add at least one [[cases]] table")
    parsed = [_case(defaults, raw, f"{where}: case {n + 1}") for n, raw in enumerate(cases)]
    names = [c.name for c in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EvalFileError(f"{where}: case names must be unique: {', '.join(duplicates)}")
    return parsed


def _case(defaults: dict[str, Any], raw: Any, where: str) -> StreamingEvalCase:
    if not isinstance(raw, dict):
        raise EvalFileError(f"{where}: must be a table")
    fields = {**defaults, **raw}
    if isinstance(defaults.get("parameters"), dict) and isinstance(raw.get("parameters"), dict):
        fields["parameters"] = {**defaults["parameters"], **raw["parameters"]}
    name = fields.pop("name", None)
    if not isinstance(name, str) or not name:
        raise EvalFileError(f"{where}: needs a name (a non-empty string)")
    where = f"{where} ({name!r})"
    if not any(k in fields for k in JOB_SOURCES):
        raise EvalFileError(f"{where}: needs user_message, input, template or chain")
    if "user_message" in fields and "input" in fields:
        raise EvalFileError(f"{where}: give user_message or input, not both")
    assertions = _assertions(fields.pop("assertions", []), where)
    if "user_message" in fields:
        fields["input"] = fields.pop("user_message")
    return StreamingEvalCase(name, assertions=assertions, **fields)


def _assertions(specs: Any, where: str) -> list[StreamingAssertion]:
    if not isinstance(specs, list):
        raise EvalFileError(f"{where}: assertions must be a list of tables")
    assertions = []
    for n, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise EvalFileError(f"{where}: assertion {n + 1} must be a table with a type")
        try:
            assertions.append(from_spec(spec))
        except ValueError as exc:
            raise EvalFileError(f"{where}: assertion {n + 1}: {exc}") from None
    return assertions
