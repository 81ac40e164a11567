"""The ten streaming assertions (contract: grampus's names and parameters).

Each factory returns a `StreamingAssertion`: a pure check of a `StreamRecord` that
answers an `AssertionResult` with a one-line `detail`, passing or not. Tokens, for
`min_throughput`, are the whitespace-separated words of the streamed text (what the
client can count itself, whatever the provider's tokenizer).
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from spool_client.evals.record import StreamRecord


class AssertionResult(msgspec.Struct):
    assertion_type: str
    passed: bool
    detail: str


Check = Callable[[StreamRecord], tuple[bool, str]]


@dataclass(frozen=True)
class StreamingAssertion:
    """One assertion: its `type` (e.g. `"no_stall"`), its parameters, and its check."""

    type: str
    params: dict[str, Any]
    check: Check = field(repr=False, compare=False)

    def __call__(self, record: StreamRecord) -> AssertionResult:
        passed, detail = self.check(record)
        return AssertionResult(assertion_type=self.type, passed=passed, detail=detail)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, not {value!r}")
    return float(value)


def _count(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
    return value


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def first_token_within(seconds: float) -> StreamingAssertion:
    """The first text chunk arrived within `seconds` of the request."""
    limit = _positive("seconds", seconds)

    def check(r: StreamRecord) -> tuple[bool, str]:
        first = r.first_token_seconds
        if first is None:
            return False, f"no text chunk arrived (limit {limit:g} s)"
        verdict = "within" if first <= limit else "over"
        return first <= limit, f"first token after {first:.3f} s, {verdict} the {limit:g} s limit"

    return StreamingAssertion("first_token_within", {"seconds": seconds}, check)


def stream_completes() -> StreamingAssertion:
    """The job ended with `job.completed`."""

    def check(r: StreamRecord) -> tuple[bool, str]:
        if r.status == "completed":
            return True, "the job completed"
        if r.status == "running":
            return False, "the stream ended without the job's final event"
        because = f": {r.error}" if r.error else ""
        return False, f"the job ended {r.status}{because}"

    return StreamingAssertion("stream_completes", {}, check)


def no_stall(max_gap_seconds: float) -> StreamingAssertion:
    """No two consecutive text chunks arrived more than `max_gap_seconds` apart."""
    limit = _positive("max_gap_seconds", max_gap_seconds)

    def check(r: StreamRecord) -> tuple[bool, str]:
        gaps = r.gaps
        if not gaps:
            return True, f"{len(r.chunks)} chunk(s): no gap to measure"
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        ok = gaps[worst] <= limit
        where = f"between chunks {worst} and {worst + 1}"
        verdict = "within" if ok else "over"
        return ok, f"longest gap {gaps[worst]:.3f} s {where}, {verdict} the {limit:g} s limit"

    return StreamingAssertion("no_stall", {"max_gap_seconds": max_gap_seconds}, check)


def _throughput(r: StreamRecord) -> tuple[float, float]:
    """(tokens per second, seconds measured): from the first chunk to the last, or from the
    request when there is one chunk."""
    words = [len(c.split()) for c in r.chunks]
    span = r.chunk_times[-1] - r.chunk_times[0] if len(words) > 1 else r.chunk_times[0]
    tokens = sum(words[1:]) if len(words) > 1 else words[0]
    return (tokens / span if span > 0 else float("inf")), span


def min_throughput(tokens_per_second: float) -> StreamingAssertion:
    """The text streamed at `tokens_per_second` or faster (first chunk to last, at the client)."""
    limit = _positive("tokens_per_second", tokens_per_second)

    def check(r: StreamRecord) -> tuple[bool, str]:
        if not r.chunks:
            return False, "no text chunk arrived: throughput 0"
        rate, span = _throughput(r)
        verdict = "at least" if rate >= limit else "below"
        return rate >= limit, f"{rate:.1f} tokens/s over {span:.3f} s, {verdict} {limit:g}"

    return StreamingAssertion("min_throughput", {"tokens_per_second": tokens_per_second}, check)


def stream_contains(text: str) -> StreamingAssertion:
    """The streamed text contains `text` (case-sensitive)."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string, not {text!r}")

    def check(r: StreamRecord) -> tuple[bool, str]:
        at = r.text.find(text)
        if at < 0:
            return False, f"{text!r} not in the {len(r.text)} streamed chars {_short(r.text)}"
        return True, f"{text!r} found at char {at}"

    return StreamingAssertion("stream_contains", {"text": text}, check)


def stream_not_empty() -> StreamingAssertion:
    """At least one text chunk with non-blank text arrived."""

    def check(r: StreamRecord) -> tuple[bool, str]:
        ok = bool(r.text.strip())
        return ok, f"{len(r.chunks)} chunk(s), {len(r.text)} chars" + ("" if ok else ": empty")

    return StreamingAssertion("stream_not_empty", {}, check)


def stream_output_length(
    min_chars: int | None = None, max_chars: int | None = None
) -> StreamingAssertion:
    """The streamed text has between `min_chars` and `max_chars` characters (inclusive)."""
    low, high = _count("min_chars", min_chars), _count("max_chars", max_chars)
    if low is None and high is None:
        raise ValueError("stream_output_length needs min_chars or max_chars")

    def check(r: StreamRecord) -> tuple[bool, str]:
        n = len(r.text)
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        ok = (low is None or n >= low) and (high is None or n <= high)
        return ok, f"{n} chars, {'within' if ok else 'outside'} {bounds}"

    params = {"min_chars": min_chars, "max_chars": max_chars}
    return StreamingAssertion("stream_output_length", params, check)


def _repeated(words: list[str], window: int) -> tuple[int, int] | None:
    """The first (earlier, later) word positions where `window` words repeat, if any."""
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - window + 1):
        first = seen.setdefault(tuple(words[i : i + window]), i)
        if first != i:
            return first, i
    return None


def no_repetition(window: int = 20) -> StreamingAssertion:
    """No run of `window` consecutive words occurs twice in the streamed text (a model loop)."""
    size = _count("window", window)
    if not size:
        raise ValueError("window must be an integer >= 1")

    def check(r: StreamRecord) -> tuple[bool, str]:
        words = r.text.split()
        found = _repeated(words, size)
        if found is None:
            return True, f"no run of {size} words repeats in {len(words)} words"
        first, again = found
        phrase = _short(" ".join(words[first : first + size]))
        return False, f"{size} words {phrase} at word {first} repeat at word {again}"

    return StreamingAssertion("no_repetition", {"window": window}, check)


def chunk_count_between(min_count: int, max_count: int) -> StreamingAssertion:
    """Between `min_count` and `max_count` text chunks arrived (inclusive)."""
    low, high = _count("min_count", min_count), _count("max_count", max_count)
    if low is None or high is None or low > high:
        raise ValueError(f"need 0 <= min_count <= max_count, not {min_count!r}, {max_count!r}")

    def check(r: StreamRecord) -> tuple[bool, str]:
        n = len(r.chunks)
        ok = low <= n <= high
        return ok, f"{n} chunks, {'within' if ok else 'outside'} [{low}, {high}]"

    params = {"min_count": min_count, "max_count": max_count}
    return StreamingAssertion("chunk_count_between", params, check)


def token_usage_reported() -> StreamingAssertion:
    """The job's final event reported token usage (a non-zero total)."""

    def check(r: StreamRecord) -> tuple[bool, str]:
        u = r.usage
        if u is None:
            return False, "the final event carried no usage"
        counts = f"{u.input_tokens} in / {u.output_tokens} out / {u.total_tokens} total tokens"
        return u.total_tokens > 0, counts

    return StreamingAssertion("token_usage_reported", {}, check)


FACTORIES: dict[str, Callable[..., StreamingAssertion]] = {
    f.__name__: f
    for f in (
        first_token_within,
        stream_completes,
        no_stall,
        min_throughput,
        stream_contains,
        stream_not_empty,
        stream_output_length,
        no_repetition,
        chunk_count_between,
        token_usage_reported,
    )
}


def from_spec(spec: dict[str, Any]) -> StreamingAssertion:
    """`{"type": "no_stall", "max_gap_seconds": 5}` → the assertion; ValueError if invalid."""
    params = dict(spec)
    kind = params.pop("type", None)
    factory = FACTORIES.get(kind) if isinstance(kind, str) else None
    if factory is None:
        known = ", ".join(FACTORIES)
        raise ValueError(f"unknown assertion type {kind!r} (known: {known})")
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        raise ValueError(f"{kind}: {exc}") from None
    return factory(**params)
