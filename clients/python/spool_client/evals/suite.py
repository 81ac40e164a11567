"""`StreamingEvalSuite`: run each case as a Spool job and check how its stream behaved."""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
import msgspec

from spool_client.aio import SpoolClient
from spool_client.errors import SpoolClientError
from spool_client.evals.assertions import AssertionResult, StreamingAssertion
from spool_client.evals.record import Recorder, StreamRecord

DEFAULT_URL = "http://127.0.0.1:8000"


class CaseResult(msgspec.Struct, kw_only=True):
    case_name: str
    passed: bool
    duration_ms: float
    assertion_results: list[AssertionResult]
    error: str | None = None  # the job could not be submitted or followed
    job_id: str | None = None
    session_id: str | None = None


class SuiteResult(msgspec.Struct, kw_only=True):
    pass_rate: float
    passed: int
    total_cases: int
    case_results: list[CaseResult]

    @property
    def failed(self) -> int:
        return self.total_cases - self.passed

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)


class StreamingEvalCase:
    """One case: a job (`user_message` or `input`, plus any other `POST /v1/jobs` field
    given as a keyword: `model`, `parameters`, `agent`, `system`, `tools`, `template`,
    `variables`, ...) and the assertions its stream must pass."""

    def __init__(
        self,
        name: str,
        user_message: str | list[dict[str, str]] | None = None,
        assertions: Sequence[StreamingAssertion] = (),
        **job: Any,
    ) -> None:
        self.name = name
        self.assertions = list(assertions)
        if user_message is not None:
            job["input"] = user_message
        self.job: dict[str, Any] = job

    def __repr__(self) -> str:
        return f"StreamingEvalCase({self.name!r}, {len(self.assertions)} assertions)"


OnCase = Callable[[StreamingEvalCase], Awaitable[object] | object]
OnCaseResult = Callable[[StreamingEvalCase, CaseResult], Awaitable[object] | object]


def summarize(case_results: list[CaseResult]) -> SuiteResult:
    passed = sum(1 for c in case_results if c.passed)
    total = len(case_results)
    return SuiteResult(
        pass_rate=passed / total if total else 1.0,
        passed=passed,
        total_cases=total,
        case_results=case_results,
    )


def evaluate(
    name: str, assertions: Iterable[StreamingAssertion], record: StreamRecord
) -> CaseResult:
    """Check a recorded stream; the case passes when every assertion does and it had no error."""
    results = [assertion(record) for assertion in assertions]
    return CaseResult(
        case_name=name,
        passed=record.status != "error" and all(r.passed for r in results),
        duration_ms=round((record.total_seconds or 0.0) * 1000, 3),
        assertion_results=results,
        error=record.error if record.status == "error" else None,
    )


class StreamingEvalSuite:
    """A list of cases run against a Spool service, `concurrency` at a time.

    Give a `client` (a `SpoolClient`), or a `url` and `api_key` (default: `$SPOOL_URL`,
    `$SPOOL_API_KEY`) for a client made for the run.
    """

    def __init__(
        self,
        name: str = "spool-eval",
        *,
        client: SpoolClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 1,
        cases: Iterable[StreamingEvalCase] = (),
    ) -> None:
        self.name = name
        self.client = client
        self.url = url or os.environ.get("SPOOL_URL", DEFAULT_URL)
        self.api_key = api_key if api_key is not None else os.environ.get("SPOOL_API_KEY")
        self.concurrency = max(1, concurrency)
        self.cases: list[StreamingEvalCase] = list(cases)

    def add_case(self, case: StreamingEvalCase) -> "StreamingEvalSuite":
        self.cases.append(case)
        return self

    def add_cases(self, cases: Iterable[StreamingEvalCase]) -> "StreamingEvalSuite":
        self.cases.extend(cases)
        return self

    async def run(
        self,
        *,
        on_case_start: OnCase | None = None,
        on_case_done: OnCaseResult | None = None,
    ) -> SuiteResult:
        """Run every case; results in the cases' order whatever order they finish in."""
        if self.client is not None:
            return await self._run(self.client, on_case_start, on_case_done)
        async with SpoolClient(self.url, self.api_key) as client:
            return await self._run(client, on_case_start, on_case_done)

    async def _run(
        self,
        client: SpoolClient,
        on_case_start: OnCase | None,
        on_case_done: OnCaseResult | None,
    ) -> SuiteResult:
        slots = asyncio.Semaphore(self.concurrency)

        async def one(case: StreamingEvalCase) -> CaseResult:
            async with slots:
                await _maybe_await(on_case_start, case)
                result = await run_case(client, case)
                await _maybe_await(on_case_done, case, result)
                return result

        return summarize(list(await asyncio.gather(*(one(c) for c in self.cases))))


async def _maybe_await(callback: Callable[..., object] | None, *args: object) -> None:
    if callback is not None:
        outcome = callback(*args)
        if isinstance(outcome, Awaitable):
            await outcome


async def run_case(client: SpoolClient, case: StreamingEvalCase) -> CaseResult:
    """Submit the case's job, record its stream with the client's clock, check it."""
    recorder = Recorder()
    job_id = session_id = None
    started = time.monotonic()
    try:
        accepted = await client.submit(**_body(case))
        job_id, session_id = accepted.job_id, accepted.session_id
        await client.collect(session_id, job_id, on_event=recorder)
    except (SpoolClientError, httpx.HTTPError) as exc:
        recorder.fail(exc)
    result = evaluate(case.name, case.assertions, recorder.record)
    result.duration_ms = round((time.monotonic() - started) * 1000, 3)
    result.job_id, result.session_id = job_id, session_id
    return result


def _body(case: StreamingEvalCase) -> dict[str, Any]:
    body = dict(case.job)
    metadata: Mapping[str, str] = body.get("metadata") or {}
    body["metadata"] = {"spool_eval_case": case.name[:200], **metadata}
    return body
