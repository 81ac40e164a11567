"""From a `POST /v1/jobs` body to the spec a worker runs: the agent's values fill what the
request leaves out, templates are rendered, chain steps and tool names checked, so that
every mistake is a 422 at submit time rather than a failed job later."""

from typing import Any

import msgspec

from spool.api.errors import ApiError
from spool.shared import toolnames
from spool.shared.agents import BUILTIN_PROVIDERS, Agent, AgentsFile
from spool.shared.jobs import (
    ChainStepSpec,
    JobRequest,
    Message,
    ProviderParameters,
    SimulatedParameters,
    behind_ms,
    coalesce_ms,
)
from spool.shared.settings import Settings
from spool.shared.templates import PREVIOUS, TemplateError, check, placeholders, render

DEFAULT_MAX_STEPS = 8


def validate_model(
    model: str, parameters: dict[str, object], providers: frozenset[str] = BUILTIN_PROVIDERS
) -> None:
    provider, _, name = model.partition(":")
    if provider not in providers:
        known = ", ".join(sorted(providers))
        raise ApiError(422, "unknown_model", f"Unknown provider {provider!r} (known: {known}).")
    if provider != "simulated" and not name:
        raise ApiError(422, "unknown_model", f"Say which model: {provider}:<model>.")
    try:
        coalesce_ms(parameters, 0)
        behind_ms(parameters, 0)
    except ValueError as exc:
        raise ApiError(422, "invalid_field", f"parameters: {exc}") from exc
    schema = SimulatedParameters if provider == "simulated" else ProviderParameters
    try:
        msgspec.convert(parameters, schema)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", f"parameters: {exc}") from exc


def apply_agent(req: JobRequest, agents: AgentsFile, default_model: str) -> JobRequest:
    """The request with the named agent's model, system, tools, parameters, max_steps and
    require_approval filling what the request leaves out (None = not given; request
    parameters win key by key)."""
    agent = Agent()
    if req.agent is not None:
        if req.agent not in agents.agents:
            known = ", ".join(sorted(agents.agents)) or "none"
            raise ApiError(422, "unknown_agent", f"No agent {req.agent!r} (known: {known}).")
        agent = agents.agents[req.agent]
    return msgspec.structs.replace(
        req,
        model=req.model or agent.model or default_model,
        system=req.system if req.system is not None else agent.system,
        tools=req.tools if req.tools is not None else agent.tools,
        parameters={**agent.parameters, **req.parameters},
        max_steps=req.max_steps or agent.max_steps or DEFAULT_MAX_STEPS,
        require_approval=(
            req.require_approval if req.require_approval is not None else agent.require_approval
        ),
    )


def _template_error(exc: TemplateError, where: str) -> ApiError:
    return ApiError(422, exc.code, f"{where}: {exc.message}")


def input_messages(req: JobRequest) -> list[Message]:
    """The user turn(s): `input`, or `template` rendered with `variables` (none for a chain)."""
    given = [n for n in ("input", "template", "chain") if getattr(req, n) is not None]
    if len(given) != 1:
        said = ", ".join(given) or "none of them"
        raise ApiError(
            422, "invalid_field", f"Give exactly one of input, template or chain (got {said})."
        )
    if req.template is not None:
        try:
            return [Message(role="user", content=render(req.template, req.variables))]
        except TemplateError as exc:
            raise _template_error(exc, "template") from exc
    if req.variables and req.input is not None:
        raise ApiError(422, "invalid_field", "`variables` need a `template` or a `chain`.")
    return req.messages()


def chain_steps(req: JobRequest, providers: frozenset[str]) -> list[ChainStepSpec]:
    """The chain's steps with the job's values filled in, each template checked now."""
    steps: list[ChainStepSpec] = []
    assert req.model is not None
    if req.chain and PREVIOUS in req.variables:
        raise ApiError(422, "invalid_chain", "`previous` is reserved in a chain's variables.")
    for i, step in enumerate(req.chain or []):
        try:
            if i == 0 and PREVIOUS in placeholders(step.template):
                message = "chain[0]: the first step has no previous step for {previous}"
                raise ApiError(422, "invalid_chain", message)
            check(step.template, set(req.variables) | {PREVIOUS})
        except TemplateError as exc:
            raise _template_error(exc, f"chain[{i}]") from exc
        parameters = {**req.parameters, **step.parameters}
        model = step.model or req.model
        validate_model(model, parameters, providers)
        steps.append(
            ChainStepSpec(
                template=step.template,
                model=model,
                system=step.system if step.system is not None else req.system,
                tools=step.tools if step.tools is not None else (req.tools or []),
                parameters=parameters,
            )
        )
    return steps


def approval_timeout(parameters: dict[str, Any], default: float) -> float:
    value = parameters.get("approval_timeout_s", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ApiError(
            422, "invalid_field", "parameters.approval_timeout_s must be a positive number."
        )
    return float(value)


async def check_tools(served: toolnames.ServedNames, names: set[str]) -> None:
    """422 for a tool no live worker serves (when workers have said what they serve)."""
    if not names:
        return
    found = await served.unknown(names)
    if found is not None:
        unknown, known = found
        raise ApiError(
            422,
            "unknown_tool",
            f"Unknown tool(s) {', '.join(unknown)} (known: {', '.join(sorted(known))}).",
        )


def job_timeout(req: JobRequest, settings: Settings) -> float:
    return req.timeout_s if req.timeout_s is not None else settings.job_timeout_s
