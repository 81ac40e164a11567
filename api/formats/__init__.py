"""Wire formats: views of the one durable session stream (contract §10).

`spool` (the default) sends the stored frames untouched. Every other format is a
translator (`base.Translator`) from Spool events to frames, applied per response by
`view.View`, so auth, limits, resume and faults are those of the events route.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Query

from spool.api.errors import ApiError
from spool.api.formats import ai_sdk, generate, grampus, openai, text, token
from spool.api.formats.base import Factory

SPOOL = "spool"


@dataclass(frozen=True)
class Format:
    name: str
    factory: Factory
    headers: Mapping[str, str] = field(default_factory=dict)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("ai-sdk", ai_sdk.AiSdk, ai_sdk.HEADERS),
        Format("openai", openai.OpenAI),
        Format("token", token.Token),
        Format("text", text.Text),
        Format("grampus", grampus.Grampus),
        Format("generate", generate.Generate),
    )
}
NAMES = (SPOOL, *FORMATS)

FormatName = Annotated[
    str, Query(description=f"The wire format: {', '.join(NAMES)} (docs/formats.md).")
]


def parse_format(name: str) -> Format | None:
    """The format named by `?format=`; None for `spool`; 422 for a name we do not speak."""
    if name == SPOOL:
        return None
    found = FORMATS.get(name)
    if found is None:
        known = ", ".join(NAMES)
        raise ApiError(422, "unknown_format", f"Unknown format {name!r} (known: {known}).")
    return found
