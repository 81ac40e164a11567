"""Terminal rendering of a stream for `spool submit --follow` and `spool tail`.

Text is written as it arrives; thinking is dimmed, tool calls and results get lines of
their own, and a job's end prints one line with tokens, cost and duration. With
`--json`, each event is one line of JSON (`id` plus the event's data) for scripts.
Terminal control characters in what the service sends are stripped (cli/terminal.py).
"""

import json
from typing import Any, TextIO

from rich.console import Console

from spool.cli.terminal import json_line, printable
from spool_client import StreamEvent

DIM, RESET = "\x1b[2m", "\x1b[0m"
_NOTES = {
    "job.retrying": ("yellow", "[retrying: attempt {attempt}, {reason}; the answer restarts]"),
    "session.gap": ("yellow", "[gap: events after {requested} up to {first_available} are gone]"),
    "job.cancelled": ("yellow", "[cancelled]"),
    "session.deleted": ("yellow", "[session deleted]"),
    "tool.approval_requested": ("yellow", "[{name} ({call_id}) waits for approval]"),
}


def _resolved(data: dict[str, Any]) -> str:
    if data.get("approved"):
        return f"[{data.get('call_id')} approved]"
    return f"[{data.get('call_id')} rejected: {data.get('reason') or 'no reason given'}]"


def summary(data: dict[str, Any]) -> str:
    """`[12 in / 40 out tokens · $0.000120 · 2.05 s]` from a `job.completed`'s data."""
    usage, cost = data.get("usage") or {}, data.get("cost")
    price = f"${cost['total']:.6f}" if cost else "cost n/a"
    seconds = (data.get("duration_ms") or 0) / 1000
    tokens = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens"
    return f"[{tokens} · {price} · {seconds:.2f} s]"


class Renderer:
    def __init__(self, out: TextIO, *, as_json: bool = False, headers: bool = False) -> None:
        self.out = out
        self.console = Console(file=out, highlight=False, soft_wrap=True)
        self.as_json = as_json
        self.headers = headers  # a line per job (for `tail`, which sees many jobs)
        self._kind: str | None = None  # "text" / "thinking" while inside a run of deltas
        self._mid_line = False  # the last delta did not end its line

    def show(self, event: StreamEvent) -> None:
        if self.as_json:
            self.out.write(json_line({"id": event.id, **event.data}) + "\n")
            self.out.flush()
            return
        data, kind = event.data, event.type
        if kind in ("text.delta", "thinking.delta"):
            self._delta(kind.partition(".")[0], data["delta"])
        elif kind == "tool.call":
            args = json.dumps(data["arguments"], ensure_ascii=False)
            self._line(f"→ {data['name']}({args})", "cyan")
        elif kind == "tool.result":
            self._line(f"← {data['name']}: {data['output']}", "red" if data["is_error"] else "cyan")
        elif kind == "tool.approval_resolved":
            self._line(_resolved(data), "yellow")
        elif kind == "job.completed":
            self._line(summary(data), "dim")
        elif kind == "job.failed":
            self._line(f"[failed] {data['error']['code']}: {data['error']['message']}", "red")
        elif kind in _NOTES:
            style, text = _NOTES[kind]
            self._line(text.format(**data), style)
        elif kind == "job.queued" and self.headers:
            self._line(f"── job {data['job_id']} ({data['model']}) ──", "bold")

    def note(self, text: str, style: str = "yellow") -> None:
        self._line(text, style)

    def _delta(self, kind: str, delta: str) -> None:
        """Written as is (tabs, emoji, newlines untouched); thinking dimmed on a colour terminal."""
        if self._kind is not None and self._kind != kind:
            self._end_line()
        self._kind = kind
        dim = kind == "thinking" and self.console.color_system is not None
        delta = printable(delta)
        self.out.write(f"{DIM}{delta}{RESET}" if dim else delta)
        self.out.flush()
        self._mid_line = not delta.endswith("\n") if delta else self._mid_line

    def _end_line(self) -> None:
        if self._mid_line:
            self.out.write("\n")
        self._kind, self._mid_line = None, False

    def _line(self, text: str, style: str) -> None:
        self._end_line()
        self.console.print(printable(text), style=style, markup=False)
