"""The reference docs cannot drift from the code: the configuration table lists exactly the
settings object's fields, docs/api.md names every route, docs/events.md every event type
and field, and no doc points outside the repository."""

import re
import typing
from pathlib import Path

import msgspec
from fastapi.routing import APIRoute

from spool.api.app import create_app
from spool.shared.settings import Settings
from spool_client.events import AnyEvent, Event

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMON = {f.name for f in msgspec.structs.fields(Event)}


def section(text: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.M)]
    return rest[: ends[0]] if ends else rest


def test_configuration_table_lists_exactly_the_settings() -> None:
    table = section((DOCS / "configuration.md").read_text(), "## Server settings")
    rows = re.findall(r"^\| `(SPOOL_[A-Z0-9_]+)` \|", table, re.M)
    fields = [f"SPOOL_{f.name.upper()}" for f in msgspec.structs.fields(Settings)]
    assert sorted(rows) == sorted(set(rows)), "a variable is listed twice"
    assert set(fields) - set(rows) == set(), "settings missing from docs/configuration.md"
    assert set(rows) - set(fields) == set(), "docs/configuration.md lists unknown settings"


def test_configuration_defaults_match_the_code() -> None:
    """Where the default cell is one literal (`3600`, `simulated`), it is the code's."""
    table = section((DOCS / "configuration.md").read_text(), "## Server settings")
    defaults = {f.name: f.default for f in msgspec.structs.fields(Settings)}
    checked = 0
    for name, cell in re.findall(r"^\| `SPOOL_([A-Z0-9_]+)` \| `([^`]+)` \|", table, re.M):
        default = defaults[name.lower()]
        if isinstance(default, int | float):
            assert float(cell) == float(default), f"SPOOL_{name}: docs {cell}, code {default}"
        else:
            assert cell == default, f"SPOOL_{name}: docs {cell}, code {default}"
        checked += 1
    assert checked > 10


def test_api_reference_names_every_route() -> None:
    text = (DOCS / "api.md").read_text()
    app = create_app(Settings())
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods - {"HEAD"}:
                assert f"`{method} {route.path}`" in text, f"{method} {route.path}"


def test_events_reference_describes_every_type_and_field() -> None:
    text = (DOCS / "events.md").read_text()
    for event_type in typing.get_args(AnyEvent):
        tag = event_type.__struct_config__.tag
        heading = next(
            (h for h in re.findall(r"^### .*$", text, re.M) if h.startswith(f"### `{tag}`")),
            None,
        )
        assert heading is not None, f"docs/events.md has no section for {tag}"
        body = section(text, heading)
        for field in msgspec.structs.fields(event_type):
            if field.name not in COMMON:
                assert f"`{field.name}`" in body, f"{tag}.{field.name} is not described"


def test_docs_point_nowhere_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *DOCS.glob("*.md")]
    for page in pages:
        text = page.read_text()
        for forbidden in ("CONTRACT.md", "../shared", "team folder"):
            assert forbidden not in text, f"{page.name} mentions {forbidden}"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
