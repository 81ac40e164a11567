"""The `ai` npm package, pinned, and node, for the tests that drive the real AI SDK.

npm installs it from the registry into a git-ignored cache (`.cache/ai-sdk/`) the first
time. Without node or npm those tests FAIL: they are never skipped.
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

AI_VERSION = "7.0.173"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "ai-sdk"


def installed_version() -> str | None:
    manifest = CACHE / "node_modules" / "ai" / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def install_ai_sdk() -> Path:
    """The folder whose node_modules holds `ai` at the pinned version."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed to test the AI SDK backend (not skipped)")
    if installed_version() != AI_VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        manifest = {"private": True, "dependencies": {"ai": AI_VERSION}}
        (CACHE / "package.json").write_text(json.dumps(manifest))
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    assert installed_version() == AI_VERSION
    return CACHE


def run_node(script: str, *args: str) -> dict[str, Any]:
    """Run `tests/formats/<script>` with node; its last stdout line is a JSON object."""
    done = subprocess.run(
        ["node", str(Path(__file__).with_name(script)), *args],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
