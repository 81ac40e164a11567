"""`/openapi.json` is a document a code generator can trust, and `/docs` works offline.

The document is read from a real API process (`lone_api`: no worker, so what schemathesis
queues stays queued): it validates as OpenAPI 3.1, every `$ref` resolves, every route
documents its bodies and errors, and every event type is a schema. Then schemathesis
sends generated requests (valid and invalid, request bodies included) to every
operation and checks that none gets a 5xx and that every answer matches the document.
"""

import time
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from spool_client.events import AnyEvent
from tests.procs import Api

pytestmark = pytest.mark.process

STREAMING = {("GET", "/v1/sessions/{session_id}/events"), ("POST", "/v1/stream")}
EXAMPLES = 12  # per operation and generation mode: ~400 requests, well under a minute
BUDGET_S = 90.0


@pytest.fixture(scope="module")
def document(lone_api: Api) -> dict[str, Any]:
    response = httpx.get(f"{lone_api.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: object = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_document_is_valid_openapi_3_1_and_resolves(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)
    found = list(refs(document))
    assert found
    for ref in found:
        resolve(document, ref)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "$defs" not in str(document)


def test_every_route_documents_bodies_and_errors(document: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for method, path, operation in operations(document):
        responses = operation["responses"]
        ok = [s for s in responses if s.startswith("2")]
        assert ok, f"{method} {path}: no 2xx response"
        for status in ok:
            for media, content in responses[status].get("content", {}).items():
                assert content.get("schema"), f"{method} {path} {status} {media}: no schema"
        for status, response in responses.items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == error, f"{method} {path} {status}: {schema}"
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], f"{method} {path} {status}"
        if method == "POST" and path in ("/v1/jobs", "/v1/stream"):
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/JobRequest"}


def test_streams_are_event_streams_with_every_event_type(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for method, path in STREAMING:
        content = document["paths"][path][method.lower()]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        assert content["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/SpoolEvent"}
    union = schemas["SpoolEvent"]
    mapping = union["discriminator"]["mapping"]
    for event_type in typing.get_args(AnyEvent):
        tag = event_type.__struct_config__.tag
        name = event_type.__name__
        assert name in schemas, name
        assert mapping[tag] == f"#/components/schemas/{name}"
        assert schemas[name]["properties"]["type"] == {"enum": [tag]}


def test_docs_are_served_without_a_cdn(lone_api: Api) -> None:
    page = httpx.get(f"{lone_api.url}/docs", timeout=10)
    assert page.status_code == 200
    assets = [
        part.split('"')[0]
        for part in page.text.replace("'", '"').split('="')[1:]
        if part.split('"')[0].endswith((".js", ".css", ".png"))
    ]
    assert len(assets) >= 3, page.text
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by Spool"
        fetched = httpx.get(urljoin(lone_api.url, asset), timeout=10)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000, asset
    assert "http://" not in page.text
    assert "https://" not in page.text


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (make browser-deps)")
async def test_swagger_ui_renders_every_route_with_no_network(
    lone_api: Api, document: dict[str, Any]
) -> None:
    """Chromium loads /docs with every request off this service refused: the page still
    renders one block per operation."""
    from playwright.async_api import Route, async_playwright

    elsewhere: list[str] = []

    async def local_only(route: Route) -> None:
        if route.request.url.startswith(lone_api.url):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            await page.route("**/*", local_only)
            await page.goto(f"{lone_api.url}/docs")
            count = len(list(operations(document)))
            await page.wait_for_function(
                f"document.querySelectorAll('.opblock').length >= {count}", timeout=30_000
            )
            assert await page.locator(".errors-wrapper").count() == 0
        finally:
            await browser.close()
    assert elsewhere == []


def _call_streaming(case: Any, base_url: str) -> httpx.Response:
    """Open a stream, read its head, hang up (an SSE response may never end by itself);
    the answer as a response holding what was read."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    content = kwargs.get("data")
    with httpx.stream(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        content=content if isinstance(content, bytes | str) else None,
        cookies=kwargs.get("cookies"),
        timeout=10,
    ) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            head = next(response.iter_bytes(), b"")
        else:
            head = response.read()
    answer = httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.items() if k != "content-length"],
        content=head,
        request=response.request,
    )
    answer.elapsed = response.elapsed
    return answer


class Fuzz:
    """Sends schemathesis' generated cases to the live API and keeps what happened."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.sent: Counter[tuple[str, str, str]] = Counter()  # (method, path, what)
        self.statuses: Counter[tuple[str, str, int]] = Counter()
        self.failures: list[str] = []
        self.started = time.monotonic()

    def send(self, case: Any, key: tuple[str, str], mode: GenerationMode) -> None:
        if time.monotonic() - self.started > BUDGET_S:
            return
        if case.body is not NOT_SET:
            self.sent[(*key, f"body:{mode.value}")] += 1
        if key in STREAMING:
            response: Any = _call_streaming(case, self.base_url)
        else:
            response = case.call(base_url=self.base_url, session=self.session, timeout=10)
        self.statuses[(*key, response.status_code)] += 1
        checks = [not_a_server_error]
        if mode is GenerationMode.POSITIVE and key not in STREAMING:
            checks += [status_code_conformance, content_type_conformance]
            checks += [response_schema_conformance]
        try:
            case.validate_response(response, checks=checks)
        except AssertionError as exc:  # schemathesis reports failed checks as AssertionErrors
            self.failures.append(f"{key} {mode.value}: {exc}")

    def run(self, operation: Any, mode: GenerationMode) -> None:
        key = (operation.method.upper(), operation.path)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def examples(case: Any) -> None:
            self.send(case, key, mode)

        try:
            examples()
        except Unsatisfiable:  # nothing of this operation can be made invalid (no inputs)
            assert mode is GenerationMode.NEGATIVE, key


def test_schemathesis_finds_no_server_error(lone_api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{lone_api.url}/openapi.json")
    fuzz = Fuzz(lone_api.url)
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz.run(result.ok(), mode)
    elapsed = time.monotonic() - fuzz.started
    print(f"schemathesis: {sum(fuzz.statuses.values())} requests in {elapsed:.1f}s")
    assert fuzz.failures == [], "\n".join(fuzz.failures[:5])
    assert not [k for k in fuzz.statuses if k[2] >= 500], fuzz.statuses
    for path in ("/v1/jobs", "/v1/stream"):
        assert fuzz.sent[("POST", path, "body:positive")] > 0, fuzz.sent
        assert fuzz.sent[("POST", path, "body:negative")] > 0, fuzz.sent
    assert fuzz.statuses[("POST", "/v1/jobs", 202)] > 0, "no generated body was accepted"


def test_the_documented_request_example_is_accepted(
    lone_api: Api, document: dict[str, Any]
) -> None:
    for path, status in (("/v1/jobs", 202), ("/v1/stream", 200)):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        with httpx.stream("POST", f"{lone_api.url}{path}", json=body["example"]) as response:
            assert response.status_code == status, path
