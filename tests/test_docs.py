"""The reference docs cannot drift from the code: the configuration table lists exactly the
settings object's fields, docs/api.md names every route, docs/events.md every event type
and field, and no doc points outside the repository."""

import ast
import re
import typing
from pathlib import Path

import msgspec
import pytest

from spool.api.app import create_app
from spool.api.routes_approvals import DecisionRequest
from spool.shared.jobs import JobRequest, JobView
from spool.shared.settings import Settings
from spool_client.events import AnyEvent, Event

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMON = {f.name for f in msgspec.structs.fields(Event)}
TEMPLATES = ROOT / "shared" / "templates.py"


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
    paths = create_app(Settings()).openapi()["paths"]
    assert len(paths) > 10
    for path, item in paths.items():
        for method in item:
            assert f"`{method.upper()} {path}`" in text, f"{method.upper()} {path}"


def _own_and_shared_fields(event_type: type) -> tuple[set[str], set[str]]:
    """Fields the type declares itself, and those it shares with other event types through
    a base class between it and `Event` (described once, before the per-type sections)."""
    shared: set[str] = set()
    for base in event_type.__mro__[1:]:
        if isinstance(base, type) and issubclass(base, Event) and base is not Event:
            shared |= {f.name for f in msgspec.structs.fields(base)}
    every = {f.name for f in msgspec.structs.fields(event_type)}
    return every - shared - COMMON, shared - COMMON


def test_events_reference_describes_every_type_and_field() -> None:
    text = (DOCS / "events.md").read_text()
    intro = section(text, "## Event types").split("\n### ", 1)[0]
    for event_type in typing.get_args(AnyEvent):
        tag = event_type.__struct_config__.tag
        heading = next(
            (h for h in re.findall(r"^### .*$", text, re.M) if h.startswith(f"### `{tag}`")),
            None,
        )
        assert heading is not None, f"docs/events.md has no section for {tag}"
        body = section(text, heading)
        own, shared = _own_and_shared_fields(event_type)
        for name in own:
            assert f"`{name}`" in body, f"{tag}.{name} is not described"
        for name in shared:
            assert f"`{name}`" in intro, f"{tag}.{name} (shared) is not described"


def test_api_reference_describes_every_body_field() -> None:
    text = (DOCS / "api.md").read_text()
    for struct in (JobRequest, JobView, DecisionRequest):
        for field in msgspec.structs.fields(struct):
            assert f"`{field.name}`" in text, f"{struct.__name__}.{field.name}"


def _error_codes() -> set[str]:
    """Every `snake_case` code the API answers with, found in `ApiError(status, code, ...)`
    and `error_response(status, code, ...)` calls (plus the template errors' codes)."""
    codes = set()
    for path in (ROOT / "api").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            code = node.args[1]
            if name in ("ApiError", "error_response") and isinstance(code, ast.Constant):
                codes.add(str(code.value))
    return codes | set(re.findall(r'TemplateError\(\s*"([a-z_]+)"', TEMPLATES.read_text()))


def test_api_reference_lists_every_error_code() -> None:
    text = (DOCS / "api.md").read_text()
    codes = _error_codes()
    assert len(codes) > 10
    for code in codes:
        assert f"`{code}`" in text, f"error code {code} is not in docs/api.md"


def test_docs_point_nowhere_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *DOCS.glob("*.md")]
    for page in pages:
        text = page.read_text()
        # written as patterns so that this file does not itself name what it forbids
        for forbidden in (r"CONTRACT\.md", r"\.\./shared", r"team\s+folder"):
            assert not re.search(forbidden, text), f"{page.name} matches {forbidden}"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_no_file_holds_a_merge_conflict_marker() -> None:
    """Parallel branches land here often: a conflict resolved by committing both sides'
    markers must not reach a reader (it did once, in docs/architecture.md)."""
    marker = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.M)
    suffixes = {".md", ".py", ".toml", ".yaml", ".yml", ".html", ".js", ".json", ".txt"}
    skip = {".git", ".venv", "node_modules", ".typecheck", ".spool"}
    found = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if path.suffix in suffixes
        and not skip.intersection(path.relative_to(ROOT).parts)
        and path.is_file()
        and marker.search(path.read_text(errors="replace"))
    ]
    assert found == []
