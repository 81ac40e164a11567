"""Streaming evaluations: run cases as Spool jobs and check how each stream behaved.

    from spool_client.evals import StreamingEvalSuite, StreamingEvalCase, first_token_within

    suite = StreamingEvalSuite(url="http://127.0.0.1:8000")
    suite.add_case(StreamingEvalCase("hi", user_message="Hi", model="simulated",
                                     assertions=[first_token_within(seconds=2.0)]))
    result = await suite.run()   # result.pass_rate, result.case_results[...]

Times are measured at the client, from the request to each text chunk's arrival
(docs/evals.md).
"""

from spool_client.evals.assertions import (
    AssertionResult,
    StreamingAssertion,
    chunk_count_between,
    first_token_within,
    min_throughput,
    no_repetition,
    no_stall,
    stream_completes,
    stream_contains,
    stream_not_empty,
    stream_output_length,
    token_usage_reported,
)
from spool_client.evals.files import EvalFileError, load_cases, parse_cases
from spool_client.evals.junit import to_junit_xml
from spool_client.evals.record import Recorder, StreamRecord
from spool_client.evals.suite import (
    CaseResult,
    StreamingEvalCase,
    StreamingEvalSuite,
    SuiteResult,
    evaluate,
    run_case,
)

__all__ = [
    "AssertionResult",
    "CaseResult",
    "EvalFileError",
    "Recorder",
    "StreamRecord",
    "StreamingAssertion",
    "StreamingEvalCase",
    "StreamingEvalSuite",
    "SuiteResult",
    "chunk_count_between",
    "evaluate",
    "first_token_within",
    "load_cases",
    "min_throughput",
    "no_repetition",
    "no_stall",
    "parse_cases",
    "run_case",
    "stream_completes",
    "stream_contains",
    "stream_not_empty",
    "stream_output_length",
    "to_junit_xml",
    "token_usage_reported",
]
