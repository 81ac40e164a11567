"""An API and a worker pointed at a fake provider, on their own Redis database (so that
the session-wide `stack` worker, which has no provider keys, never takes these jobs)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeProvider
from tests.procs import Api, Worker, service_env
from tests.sse import Frame

AGENTS_TOML = """
[endpoints.local]
base_url = "{base}/v1"
api_key_env = "LOCAL_LLM_KEY"

[endpoints.batch]
base_url = "{base}/v1"
streaming = false

[agents.mathy]
model = "local:qwen2.5"
system = "Use the calculator."
tools = ["calculator"]
max_steps = 3

[prices."local:qwen2.5"]
input = 1.0
output = 2.0
"""


def other_db(redis_url: str, db: int = 1) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def provider_env(redis_url: str, fake: FakeProvider, agents_file: Path) -> dict[str, str]:
    agents_file.write_text(AGENTS_TOML.format(base=fake.url))
    env = service_env(
        other_db(redis_url),
        sse_ping_s="0.5",
        provider_backoff_s="0.01",
        provider_idle_timeout_s="3",
        agents_file=str(agents_file),
    )
    return env | {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test-anthropic-key",
        "OPENAI_BASE_URL": f"{fake.url}/v1",
        "OPENAI_API_KEY": "test-openai-key",
        "LOCAL_LLM_KEY": "test-local-key",
    }


@contextmanager
def provider_stack(
    redis_url: str, log_dir: Path, fake: FakeProvider, agents_file: Path
) -> Iterator[Api]:
    """A worker and an API whose providers point at `fake`."""
    env = provider_env(redis_url, fake, agents_file)
    worker = Worker(env, log_dir).start()
    try:
        api = Api(env, log_dir).start()
        try:
            yield api
        finally:
            api.stop()
    finally:
        worker.stop()


def of(events: list[Frame], kind: str) -> list[dict[str, Any]]:
    """The JSON data of the events of one type."""
    return [e.json for e in events if e.event == kind]
