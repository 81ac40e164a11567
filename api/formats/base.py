"""What every wire format shares: the translator protocol and tolerant event decoding.

A translator is the pure part of a format: fed one job's events in stream order, it
returns the frames each one becomes (`sse_encoder.Frame`), keeping only what the format
needs to remember (has `start` been sent, which text part is open, ...). It does no I/O,
so a resumed response rebuilds the exact state by feeding it the job's earlier events
and dropping their frames (`formats.view`).

Translators match the event types they show and return no frame for the rest (`case _`),
on purpose not exhaustive: an event type a newer worker adds is skipped, not an error.
"""

from collections.abc import Callable
from typing import Protocol

import msgspec

from spool.api.sse_encoder import Frame
from spool_client.events import AnyEvent, Cost, Event, decoder

DONE = Frame(b"[DONE]")
"""The end-of-stream sentinel of OpenAI-style streams (and the AI SDK's)."""

_KNOWN: frozenset[bytes] = frozenset(
    str(member.__struct_config__.tag).encode() for member in AnyEvent.__args__
)
_json = msgspec.json.Encoder()


class Translator(Protocol):
    def feed(self, event: AnyEvent) -> list[Frame]:
        """The frames `event` becomes, given the events fed before it."""
        ...


Factory = Callable[[], Translator]


def decode_event(kind: bytes, data: bytes) -> AnyEvent | None:
    """The event, or None for a type this server does not know (a newer worker's event,
    skipped by every translator) or data that does not decode."""
    if kind not in _KNOWN:
        return None
    try:
        return decoder.decode(data)
    except msgspec.DecodeError:  # ValidationError included
        return None


def json_frame(obj: object, event: bytes | None = None) -> Frame:
    return Frame(_json.encode(obj), event)


def cost_of(event: Event) -> Cost | None:
    """A terminal event's cost, when the event type and the model's price carry one."""
    cost = getattr(event, "cost", None)
    return cost if isinstance(cost, Cost) else None


def cost_total(event: Event) -> float | None:
    cost = cost_of(event)
    return None if cost is None else cost.total
