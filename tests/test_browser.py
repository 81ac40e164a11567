"""The demo page in a real browser: Playwright drives Debian's Chromium (no browser download).

The page must survive its API being killed (-9) and restarted on the same port while
an answer streams, end with exactly the answer, and stop connecting once it is done.
With API keys set, it streams with a token (contract §4) and gets a new one when the
restarted API refuses the old one.
"""

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Dialog, Page, async_playwright

from tests.conftest import STACK_SETTINGS
from tests.procs import Api, service_env, started, stopped
from tests.test_resume import PARAGRAPHS

pytestmark = pytest.mark.process

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT = " ".join(PARAGRAPHS[:2] + PARAGRAPHS[3:])  # ~60 tokens, some of them not ASCII
KEYS = "acme:key-acme"


@pytest.fixture(scope="session")
def chromium() -> str:
    if not CHROMIUM.exists():  # .ci/run installs it before the tests (make browser-deps)
        pytest.skip("no Chromium at /usr/bin/chromium: run `make browser-deps` first")
    return str(CHROMIUM)


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=ARGS
        )
        try:
            yield context
        finally:
            await context.close()


def events_requests(page: Page) -> list[str]:
    """Every request the page makes to an events URL, as the browser sends it."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/events" in r.url else None)
    return seen


async def send(page: Page, text: str, tokens_per_second: int, key: str = "") -> None:
    await page.fill("#prompt", "tell me about streams")
    await page.select_option("#model", "simulated")
    await page.click("#options > summary")  # open the options panel, as a user would
    params = {"text": text, "tokens_per_second": tokens_per_second, "ttft_ms": 10}
    await page.fill("#params", json.dumps(params))
    await page.fill("#key", key)
    await page.click("#send")


async def words_shown(page: Page, at_least: int) -> None:
    await page.wait_for_function(f"window.spool.text.split(' ').length > {at_least}")


async def completed(page: Page) -> None:
    await page.wait_for_function("document.getElementById('status').textContent === 'completed'")


async def test_page_survives_the_api_being_killed_and_restarted(
    browser: BrowserContext, redis_url: str, log_dir: Path, stack: Api
) -> None:
    env = service_env(redis_url, api_keys=KEYS, secret="before", **STACK_SETTINGS)
    api = await started(Api(env, log_dir))
    restarted: list[Api] = []

    def kill_and_restart() -> None:
        """kill -9, then start again on the same port with a rotated SPOOL_SECRET."""
        api.signal(signal.SIGKILL)
        assert api.popen is not None
        api.popen.wait(10)
        env = service_env(redis_url, api_keys=KEYS, secret="after", **STACK_SETTINGS)
        restarted.append(Api(env, log_dir, port=api.port).start())

    try:
        page = await browser.new_page()
        requests = events_requests(page)
        await page.goto(f"{api.url}/")
        await send(page, TEXT, tokens_per_second=20, key="key-acme")  # keys set: a stream token
        await words_shown(page, 8)
        await asyncio.to_thread(kill_and_restart)
        await completed(page)
        assert await page.text_content("#out") == TEXT
        assert await page.evaluate("window.spool.text") == TEXT
        assert "out tokens" in (await page.text_content("#usage") or "")
        # The browser reconnected by itself and was refused (its token's secret is gone),
        # which ends an EventSource for good: the page made a new one with a fresh token.
        assert await page.evaluate("window.spool.connections") == 2
        done = len(requests)
        assert done >= 3, requests
        assert all("token=" in url for url in requests)
        assert "last_event_id=" in requests[-1]
        # Nothing to wait *for* when proving an absence: watch for several reconnect
        # intervals (the stack's `retry:` is 250 ms) that no request is made.
        await page.wait_for_timeout(2000)
        assert len(requests) == done, requests[done:]
        assert await page.evaluate("window.spool.source") is None
    finally:
        for proc in [api, *restarted]:
            await stopped(proc)


async def test_several_tabs_follow_one_session_through_drops(
    browser: BrowserContext, stack: Api
) -> None:
    first = await browser.new_page()
    await first.goto(f"{stack.url}/")
    # slow enough (~8 s) that the answer is still streaming when the second tab has loaded
    await send(first, TEXT, tokens_per_second=8)
    await words_shown(first, 3)
    session = await first.input_value("#session")
    second = await browser.new_page()
    await second.goto(f"{stack.url}/#session={session}")
    await first.click("#drop")  # drop the first tab's connection mid-answer
    for page in (first, second):
        await completed(page)
        assert await page.text_content("#out") == TEXT
    assert await first.evaluate("window.spool.connections") == 2
    assert await second.evaluate("window.spool.source !== null")  # a session tab stays open


async def test_cancel_button_stops_the_running_job(browser: BrowserContext, stack: Api) -> None:
    page = await browser.new_page()
    await page.goto(f"{stack.url}/")
    assert await page.is_disabled("#cancel")  # nothing runs yet
    await send(page, TEXT, tokens_per_second=5)
    await words_shown(page, 2)
    await page.click("#cancel")
    await page.wait_for_function("document.getElementById('status').textContent === 'cancelled'")
    shown = await page.text_content("#out") or ""
    assert shown
    assert TEXT.startswith(shown)
    assert len(shown) < len(TEXT)
    assert "out tokens" in (await page.text_content("#usage") or "")
    assert await page.is_disabled("#cancel")


async def ask_for_a_tool(page: Page, stack: Api) -> None:
    await page.goto(f"{stack.url}/")
    await page.click("#options > summary")
    call = {"name": "calculator", "arguments": {"expression": "6*7"}}
    params = {"text": "Let me compute.", "tool_calls": [call], "ttft_ms": 0}
    await page.fill("#params", json.dumps(params))
    await page.fill("#tools-list", "calculator")
    await page.check("#approval")
    await page.click("#send")
    await page.wait_for_selector("#approvals .approval button.approve")
    assert "calculator" in (await page.text_content("#approvals") or "")


async def test_approve_and_reject_buttons_decide_a_waiting_tool_call(
    browser: BrowserContext, stack: Api
) -> None:
    page = await browser.new_page()
    await ask_for_a_tool(page, stack)
    await page.click("#approvals button.approve")
    await completed(page)
    assert "call_0 approved" in (await page.text_content("#approvals") or "")
    assert "← calculator: 42" in (await page.text_content("#tools") or "")

    async def give_a_reason(dialog: Dialog) -> None:  # the page asks why on Reject
        await dialog.accept("too risky")

    page.on("dialog", give_a_reason)
    await page.fill("#session", "")  # a new session
    await ask_for_a_tool(page, stack)
    await page.click("#approvals button.reject")
    await completed(page)
    assert "call_0 rejected: too risky" in (await page.text_content("#approvals") or "")
    assert "too risky" in (await page.text_content("#tools .error") or "")
