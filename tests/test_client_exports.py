"""The public surface of `spool_client` is a contract: `__all__` lists exactly what users
import from each public module, and everything listed is there (as httpx checks its own)."""

import importlib
import importlib.metadata
import types

import pytest

import spool_client

pytestmark = pytest.mark.unit

PUBLIC = {
    "spool_client": {
        "Accepted", "ApprovalView", "CancelView", "ClientError", "Cost", "ErrorInfo",
        "JobCancelledError", "JobError", "JobFailedError", "JobResult", "JobView", "ModelInfo",
        "Price", "SessionView", "SpoolClient", "SpoolClientError", "StreamEvent",
        "StreamInterrupted", "StreamTimeout", "StreamToken", "SyncSpoolClient", "Usage",
        "__version__", "collect_events",
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


def test_every_public_member_is_exported_and_comes_from_the_package() -> None:
    public = {
        name
        for name, value in vars(spool_client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(spool_client.__all__)
    for name in public:
        assert getattr(spool_client, name).__module__.startswith("spool_client."), name


def test_version_is_the_distribution_version() -> None:
    assert spool_client.__version__ == importlib.metadata.version("spool-client")
