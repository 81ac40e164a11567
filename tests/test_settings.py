"""Settings from the environment: one-line errors naming the variable, warnings for typos,
and `SPOOL_LOG_FORMAT=json` logs."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from spool.shared.settings import OTHER_VARIABLES, Settings, SettingsError, unknown_variables
from tests.helpers import follow_job, submit
from tests.procs import ROOT, Api, Worker, service_env


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "SPOOL_RETENTION_S",
            "abc",
            "SPOOL_RETENTION_S='abc' is not valid: expected a whole number",
        ),
        ("SPOOL_SSE_PING_S", "fast", "SPOOL_SSE_PING_S='fast' is not valid: expected a number"),
        (
            "SPOOL_LOG_FORMAT",
            "xml",
            "SPOOL_LOG_FORMAT='xml' is not valid: expected one of text, json",
        ),
        ("SPOOL_LOG_LEVEL", "loud", "SPOOL_LOG_LEVEL='loud' is not valid: expected one of DEBUG"),
        ("SPOOL_API_KEYS", "no-colon", "SPOOL_API_KEYS entries are tenant:key, got 'no-colon'"),
    ],
)
def test_a_bad_setting_is_named_with_what_it_expects(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({name: value})
    assert str(bad.value).startswith(expected)


@pytest.mark.unit
def test_unknown_variables_are_warned_about_with_a_suggestion() -> None:
    env = {
        "SPOOL_RETENTON_S": "5",
        "SPOOL_RETENTION_S": "5",
        "SPOOL_ZZZ": "1",
        "HOME": "/root",
        **{name: "x" for name in OTHER_VARIABLES},
    }
    assert unknown_variables(env) == [
        "unknown setting SPOOL_RETENTON_S is ignored (did you mean SPOOL_RETENTION_S?)",
        "unknown setting SPOOL_ZZZ is ignored",
    ]
    assert "SPOOL_TEST_REDIS_URL" in OTHER_VARIABLES  # the suite's own variable is known


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.process
@pytest.mark.parametrize(
    "command", [["-m", "spool.api"], ["-m", "spool.worker"], ["-m", "spool.cli", "dev"]]
)
def test_a_malformed_setting_stops_the_process_with_one_line(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["SPOOL_RETENTION_S"] = "abc"
    done = _run(*command, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "Error: SPOOL_RETENTION_S='abc' is not valid: expected a whole number\n"


@pytest.mark.process
async def test_json_logs_carry_job_and_session_and_typos_are_warned(
    redis_url: str, log_dir: Path
) -> None:
    """An API and a worker of their own (another Redis database), logging JSON."""
    own_db = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(own_db).flushdb()
    env = service_env(own_db, log_format="json", retenton_s="5")
    env["SPOOL_TEST_REDIS_URL"] = own_db  # known: not warned about
    worker = await asyncio.to_thread(Worker(env, log_dir).start)
    api = await asyncio.to_thread(Api(env, log_dir).start)
    try:
        async with httpx.AsyncClient(base_url=api.url) as http:
            accepted = await submit(http, parameters={"text": "a b", "ttft_ms": 0})
            await follow_job(http, accepted)
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(worker.stop)
    for proc in (api, worker):
        records = [json.loads(line) for line in proc.output().splitlines()]  # every line
        warnings = [r["message"] for r in records if r["level"] == "WARNING"]
        assert warnings == [
            "unknown setting SPOOL_RETENTON_S is ignored (did you mean SPOOL_RETENTION_S?)"
        ]
    records = [json.loads(line) for line in worker.output().splitlines()]
    finished = [r for r in records if r.get("job_id") == accepted["job_id"]]
    assert {r.get("session_id") for r in finished} == {accepted["session_id"]}
    assert any(r["message"].endswith("completed (attempt 1)") for r in finished)
    assert any("POST /v1/jobs" in r["message"] for r in map(json.loads, api.output().splitlines()))
