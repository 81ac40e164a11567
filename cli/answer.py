"""`spool submit --text-only`: the answer's text and nothing else, flushed per delta.

Written to stdout or to `--output FILE`. Text of an attempt that a `job.retrying`
voids is taken back when the output is a file (truncated to what it had before the
job began), so the file ends holding exactly the job's `output_text`.
"""

from typing import TextIO

import click

from spool.cli.terminal import printable
from spool_client import StreamEvent


class AnswerWriter:
    """A renderer (`show`, `note`) that writes only `text.delta`s."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._start = out.tell() if out.seekable() else None
        self._terminal = out.isatty()  # a file gets the exact text; a terminal, safe text

    def show(self, event: StreamEvent) -> None:
        if event.type == "text.delta":
            delta = str(event.data.get("delta", ""))
            self.out.write(printable(delta) if self._terminal else delta)
            self.out.flush()
        elif event.type == "job.retrying" and self._start is not None:
            self.out.seek(self._start)
            self.out.truncate()
        elif event.type == "job.failed":
            error = event.data.get("error") or {}
            self.note(f"[failed] {error.get('code')}: {error.get('message')}")
        elif event.type == "job.cancelled":
            self.note("[cancelled]")

    def note(self, text: str, style: str = "yellow") -> None:
        click.echo(printable(text), err=True)
