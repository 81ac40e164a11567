"""The ten streaming assertions on synthetic chunk timings, and the suite file format."""

from pathlib import Path

import pytest

from spool_client.evals import (
    AssertionResult,
    CaseResult,
    EvalFileError,
    StreamingAssertion,
    StreamRecord,
    SuiteResult,
    chunk_count_between,
    evaluate,
    first_token_within,
    load_cases,
    min_throughput,
    no_repetition,
    no_stall,
    stream_completes,
    stream_contains,
    stream_not_empty,
    stream_output_length,
    to_junit_xml,
    token_usage_reported,
)
from spool_client.events import Usage

pytestmark = pytest.mark.unit

USAGE = Usage(input_tokens=3, output_tokens=6, total_tokens=9)


def record(times: list[float], chunks: list[str] | None = None, **fields: object) -> StreamRecord:
    chunks = chunks if chunks is not None else ["tok "] * len(times)
    r = StreamRecord(chunks=chunks, chunk_times=times, status="completed", usage=USAGE)
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def verdict(assertion: StreamingAssertion, r: StreamRecord) -> tuple[bool, str]:
    result = assertion(r)
    assert result.assertion_type == assertion.type
    return result.passed, result.detail


def test_first_token_within() -> None:
    check = first_token_within(seconds=0.5)
    assert verdict(check, record([0.4, 0.9])) == (
        True,
        "first token after 0.400 s, within the 0.5 s limit",
    )
    assert verdict(check, record([0.6])) == (
        False,
        "first token after 0.600 s, over the 0.5 s limit",
    )
    assert verdict(check, record([])) == (False, "no text chunk arrived (limit 0.5 s)")


def test_stream_completes() -> None:
    assert verdict(stream_completes(), record([0.1])) == (True, "the job completed")
    failed = record([0.1], status="failed", error="provider_error: boom")
    assert verdict(stream_completes(), failed) == (
        False,
        "the job ended failed: provider_error: boom",
    )
    assert not stream_completes()(record([], status="running")).passed


def test_no_stall_names_the_longest_gap() -> None:
    times = [0.1, 0.2, 1.4, 1.5]
    assert verdict(no_stall(max_gap_seconds=1.0), record(times)) == (
        False,
        "longest gap 1.200 s between chunks 1 and 2, over the 1 s limit",
    )
    assert no_stall(max_gap_seconds=1.5)(record(times)).passed
    assert no_stall(max_gap_seconds=0.1)(record([3.0])).passed  # one chunk: no gap


def test_min_throughput_counts_words_from_the_first_chunk_to_the_last() -> None:
    # 1 + 2 + 2 words; after the first chunk 4 words in 0.5 s = 8 tokens/s
    r = record([1.0, 1.25, 1.5], ["a ", "b c ", "d e"])
    assert verdict(min_throughput(tokens_per_second=8), r) == (
        True,
        "8.0 tokens/s over 0.500 s, at least 8",
    )
    assert verdict(min_throughput(tokens_per_second=9), r)[0] is False
    assert min_throughput(tokens_per_second=1)(record([2.0], ["a b"])).passed  # 2 words / 2 s
    assert verdict(min_throughput(tokens_per_second=1), record([])) == (
        False,
        "no text chunk arrived: throughput 0",
    )


def test_stream_contains_and_not_empty() -> None:
    r = record([0.1, 0.2], ["It is ", "4."])
    assert verdict(stream_contains(text="4"), r) == (True, "'4' found at char 6")
    assert verdict(stream_contains(text="five"), r) == (
        False,
        "'five' not in the 8 streamed chars 'It is 4.'",
    )
    assert verdict(stream_not_empty(), r) == (True, "2 chunk(s), 8 chars")
    assert verdict(stream_not_empty(), record([0.1], ["  "])) == (
        False,
        "1 chunk(s), 2 chars: empty",
    )


def test_stream_output_length_and_chunk_count_between() -> None:
    r = record([0.1, 0.2, 0.3], ["abc", "def", "g"])
    assert verdict(stream_output_length(min_chars=5, max_chars=7), r) == (
        True,
        "7 chars, within [5, 7]",
    )
    assert verdict(stream_output_length(max_chars=6), r) == (False, "7 chars, outside [, 6]")
    assert verdict(chunk_count_between(min_count=1, max_count=3), r) == (
        True,
        "3 chunks, within [1, 3]",
    )
    assert verdict(chunk_count_between(min_count=4, max_count=9), r) == (
        False,
        "3 chunks, outside [4, 9]",
    )


def test_no_repetition_finds_a_repeated_run_of_words() -> None:
    looping = record([0.1], ["the cat sat on the mat the cat sat on the mat"])
    assert verdict(no_repetition(window=4), looping) == (
        False,
        "4 words 'the cat sat on' at word 0 repeat at word 6",
    )
    assert no_repetition(window=7)(looping).passed
    assert verdict(no_repetition(window=3), record([0.1], ["a b c d"])) == (
        True,
        "no run of 3 words repeats in 4 words",
    )


def test_token_usage_reported() -> None:
    assert verdict(token_usage_reported(), record([0.1])) == (True, "3 in / 6 out / 9 total tokens")
    assert verdict(token_usage_reported(), record([0.1], usage=None)) == (
        False,
        "the final event carried no usage",
    )
    assert not token_usage_reported()(record([0.1], usage=Usage())).passed


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="seconds must be a number > 0"):
        first_token_within(seconds=-1)
    with pytest.raises(ValueError, match="needs min_chars or max_chars"):
        stream_output_length()
    with pytest.raises(ValueError, match="min_count <= max_count"):
        chunk_count_between(min_count=5, max_count=2)


def test_a_case_passes_only_when_every_assertion_passes_and_the_job_ran() -> None:
    r = record([0.1, 0.2], ["It is ", "4."])
    ok = evaluate("c", [stream_contains(text="4"), stream_completes()], r)
    assert (ok.passed, [a.passed for a in ok.assertion_results]) == (True, [True, True])
    bad = evaluate("c", [stream_contains(text="5"), stream_completes()], r)
    assert (bad.passed, [a.passed for a in bad.assertion_results]) == (False, [False, True])
    broken = evaluate("c", [], record([], status="error", error="404 no"))
    assert (broken.passed, broken.error) == (False, "404 no")


SUITE = """
[defaults]
model = "simulated"
parameters = { ttft_ms = 10 }

[[cases]]
name = "first"
user_message = "hi"
parameters = { text = "It is 4." }
assertions = [{ type = "stream_contains", text = "4" }, { type = "no_repetition", window = 20 }]

[[cases]]
name = "second"
template = "Say {word}"
variables = { word = "x" }
"""


def test_a_suite_file_becomes_cases(tmp_path: Path) -> None:
    path = tmp_path / "cases.toml"
    path.write_text(SUITE)
    first, second = load_cases(path)
    assert first.name == "first"
    assert first.job == {
        "model": "simulated",
        "parameters": {"ttft_ms": 10, "text": "It is 4."},
        "input": "hi",
    }
    assert [(a.type, a.params) for a in first.assertions] == [
        ("stream_contains", {"text": "4"}),
        ("no_repetition", {"window": 20}),
    ]
    assert second.job["template"] == "Say {word}"
    assert second.assertions == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[cases]\nname=", "not valid TOML"),
        ("title = 'x'", "no cases"),
        ("[[cases]]\nuser_message = 'x'", "case 1: needs a name"),
        ("[[cases]]\nname = 'a'", "case 1 ('a'): needs user_message, input, template or chain"),
        (
            "[[cases]]\nname = 'a'\ninput = 'x'\nassertions = [{ type = 'fast' }]",
            "assertion 1: unknown assertion type 'fast' (known: first_token_within,",
        ),
        (
            "[[cases]]\nname = 'a'\ninput = 'x'\nassertions = [{ type = 'no_stall', gap = 1 }]",
            "assertion 1: no_stall: missing a required argument: 'max_gap_seconds'",
        ),
        (
            "[[cases]]\nname = 'a'\ninput = 'x'\n"
            "assertions = [{ type = 'no_stall', max_gap_seconds = 'x' }]",
            "max_gap_seconds must be a number > 0, not 'x'",
        ),
        ("[[cases]]\nname = 'a'\ninput = 'x'\n[[cases]]\nname = 'a'\ninput = 'y'", "unique: a"),
    ],
)
def test_malformed_suite_files_say_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(EvalFileError) as caught:
        load_cases(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_junit_xml_has_one_testcase_per_case() -> None:
    passed = AssertionResult(assertion_type="stream_contains", passed=True, detail="found")
    failed = AssertionResult(assertion_type="no_stall", passed=False, detail="gap 9 s")
    cases = [
        CaseResult(case_name="ok", passed=True, duration_ms=12.5, assertion_results=[passed]),
        CaseResult(case_name="bad", passed=False, duration_ms=20, assertion_results=[failed]),
    ]
    xml = to_junit_xml(SuiteResult(pass_rate=0.5, passed=1, total_cases=2, case_results=cases))
    assert '<testsuite name="spool-eval" tests="2" failures="1" errors="0"' in xml
    assert '<testcase classname="spool-eval" name="ok" time="0.013" />' in xml
    assert '<failure message="1 of 1 assertions failed">no_stall: gap 9 s</failure>' in xml
