"""The public surface of `spool_client` is a contract: `__all__` lists exactly what users
import from each public module, and everything listed is there (as httpx checks its own)."""

import importlib

import pytest

PUBLIC = {
    "spool_client": {
        "Accepted", "ClientError", "JobCancelledError", "JobError", "JobFailedError",
        "JobResult", "SpoolClient", "SpoolClientError", "StreamEvent", "StreamInterrupted",
        "StreamTimeout", "SyncSpoolClient", "collect_events",
    },
    "spool_client.evals": {
        "AssertionResult", "CaseResult", "EvalFileError", "Recorder", "StreamRecord",
        "StreamingAssertion", "StreamingEvalCase", "StreamingEvalSuite", "SuiteResult",
        "chunk_count_between", "evaluate", "first_token_within", "load_cases",
        "min_throughput", "no_repetition", "no_stall", "parse_cases", "run_case",
        "stream_completes", "stream_contains", "stream_not_empty", "stream_output_length",
        "to_junit_xml", "token_usage_reported",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_lists_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    assert sorted(module.__all__) == list(module.__all__), "kept sorted"
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_testing_helpers_are_importable() -> None:
    from spool_client.testing import mock_events, mock_stream

    assert callable(mock_events)
    assert callable(mock_stream)
