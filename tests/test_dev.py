"""`spool dev` from nothing: an embedded Redis, the API and a worker, a ready line, a clean stop."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from spool.cli.embedded import free_port, reachable
from tests.procs import ROOT, wait_for


def test_spool_dev_starts_everything_on_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env |= {"SPOOL_REDIS_URL": "embedded", "SPOOL_EMBEDDED_REDIS_PORT": str(redis_port)}
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
    try:
        wait_for(
            lambda: "Spool ready" in log.read_text() or proc.poll() is not None, 60, "ready line"
        )
        text = log.read_text()
        assert proc.poll() is None, text
        assert f"http://127.0.0.1:{port}/" in text
        assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()  # multi-part AOF (7.0+)
        url = f"http://127.0.0.1:{port}"
        job = httpx.post(
            f"{url}/v1/jobs",
            json={"input": "hi", "parameters": {"text": "ok then", "ttft_ms": 0}},
        ).json()
        with httpx.stream("GET", url + job["events_url"], timeout=30) as response:
            body = "".join(response.iter_text())
        assert "event: job.completed" in body
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert not reachable(f"redis://127.0.0.1:{redis_port}/0"), "embedded Redis stopped with dev"
