"""`spool dev` from nothing: an embedded Redis, the API and a worker, supervised.

The ready line comes after the API and the worker are ready; a worker killed with
SIGKILL is named with its exit code and restarted while the API and Redis stay up, and
a job still completes; Ctrl-C stops everything cleanly.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from spool.cli.embedded import free_port, reachable
from tests.procs import ROOT, wait_for

pytestmark = pytest.mark.process


def run_a_job(url: str) -> str:
    job = httpx.post(
        f"{url}/v1/jobs", json={"input": "hi", "parameters": {"text": "ok then", "ttft_ms": 0}}
    ).json()
    with httpx.stream("GET", url + job["events_url"], timeout=30) as response:
        return "".join(response.iter_text())


def test_spool_dev_supervises_embedded_redis_the_api_and_a_worker(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env |= {"SPOOL_REDIS_URL": "embedded", "SPOOL_EMBEDDED_REDIS_PORT": str(redis_port)}
    env |= {"SPOOL_LEASE_S": "2", "SPOOL_HEARTBEAT_S": "0.3", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "dev.log"
    spool = Path(sys.executable).parent / "spool"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(spool), "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "Spool ready" in log.read_text() or proc.poll() is not None, 60, "ready")
        text = log.read_text()
        assert proc.poll() is None, text
        ready_at = text.index("Spool ready")
        assert text.index("Application startup complete") < ready_at, "the API was ready first"
        assert re.search(r"worker \S+ ready \(concurrency", text[:ready_at]), "and the worker"
        assert f"embedded server at redis://127.0.0.1:{redis_port}/0 (db 0)" in text
        assert f"demo page: {url}/" in text
        assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()  # multi-part AOF (7.0+)
        assert "event: job.completed" in run_a_job(url)

        first = re.search(r"worker 1: started \(pid (\d+)\)", text)
        assert first is not None, text
        os.kill(int(first[1]), signal.SIGKILL)
        restarted = re.compile(r"worker 1: started \(pid (?!" + first[1] + r"\b)(\d+)\)")
        wait_for(lambda: restarted.search(log.read_text()) is not None, 60, "the restart")
        wait_for(lambda: log.read_text().count("worker 1: ready") == 2, 60, "its readiness")
        text = log.read_text()
        assert f"worker 1 (pid {first[1]}) was killed by SIGKILL (exit code -9); restarting" in text
        assert "event: job.completed" in run_a_job(url)  # same API, same Redis
        assert text.count("the API: started") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0, log.read_text()
    assert not reachable(f"redis://127.0.0.1:{redis_port}/0"), "embedded Redis stopped with dev"
    assert "SIGKILL" not in log.read_text().split("restarting", 1)[1], "stopped within grace"
