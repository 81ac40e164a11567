"""The agents file (`SPOOL_AGENTS_FILE`, TOML): named agents, named endpoints, prices.

```toml
[endpoints.local]                      # an OpenAI-compatible server (vLLM, Ollama, ...)
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "LOCAL_API_KEY"          # optional: the variable holding its key
streaming = true                       # false: one request, one text chunk

[agents.helper]
model = "local:llama3.1"               # <endpoint>:<model>, or anthropic:/openai:/simulated
system = "You are terse."
tools = ["calculator"]
parameters = { temperature = 0.2 }
max_steps = 4
require_approval = ["send_email"]      # or true: every tool call waits for a human

[prices."local:llama3.1"]              # USD per million tokens
input = 0.0
output = 0.0
```

It lives in `shared` so that the API validates agent and endpoint names without the
worker's code. Loaded files are cached by path and modification time.
"""

import os
import tomllib
from typing import Annotated, Any

import msgspec

from spool.shared.errors import SpoolError
from spool.shared.pricing import Price

BUILTIN_PROVIDERS = frozenset({"simulated", "anthropic", "openai"})
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+\Z")]


class AgentsFileError(SpoolError):
    """The agents file is missing, not TOML, or does not match the schema."""


class Endpoint(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    base_url: str
    api_key_env: str | None = None
    streaming: bool = True

    def api_key(self) -> str:
        # OpenAI-compatible local servers usually ignore the key, but the SDK wants one.
        return os.environ.get(self.api_key_env, "") if self.api_key_env else "not-needed"


class Agent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str | None = None
    system: str | None = None
    tools: list[str] = []
    parameters: dict[str, Any] = {}
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    require_approval: bool | list[str] | None = None  # tool calls that wait for a human


class AgentsFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agents: dict[Name, Agent] = {}
    endpoints: dict[Name, Endpoint] = {}
    prices: dict[str, Price] = {}

    def __post_init__(self) -> None:
        clash = BUILTIN_PROVIDERS & self.endpoints.keys()
        if clash:
            raise msgspec.ValidationError(f"endpoint names clash with providers: {sorted(clash)}")

    def providers(self) -> frozenset[str]:
        return BUILTIN_PROVIDERS | self.endpoints.keys()


EMPTY = AgentsFile()
_cache: dict[str, tuple[float, AgentsFile]] = {}


def load_agents(path: str | None) -> AgentsFile:
    """The parsed agents file at `path` (`EMPTY` for None), re-read when it changes."""
    if not path:
        return EMPTY
    try:
        mtime = os.stat(path).st_mtime
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with open(path, "rb") as f:
            parsed = msgspec.convert(tomllib.load(f), AgentsFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise AgentsFileError(f"agents file {path}: {exc}") from exc
    _cache[path] = (mtime, parsed)
    return parsed
