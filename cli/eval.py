"""`spool eval CASES.toml`: a streaming evaluation suite against a running service (docs/evals.md).

Exit status: 0 every case passed, 1 a case failed, 2 the file is malformed or the
service cannot be reached (one line on stderr, no traceback).
"""

import asyncio
import sys
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spool.cli.client import client_options, err_console
from spool_client import SpoolClient
from spool_client.evals import (
    CaseResult,
    EvalFileError,
    StreamingEvalCase,
    StreamingEvalSuite,
    SuiteResult,
    load_cases,
    to_junit_xml,
)


class Unreachable(Exception):
    """The service did not answer `GET /healthz`."""


async def _check_reachable(url: str) -> None:
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
            response = await http.get("/healthz")
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach Spool at {url}: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise Unreachable(
            f"Spool at {url} is not healthy: GET /healthz answered {response.status_code}"
        )


def _progress() -> Progress:
    """Progress on stderr, shown only on a terminal."""
    return Progress(
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


async def _run(
    cases: list[StreamingEvalCase], url: str, key: str | None, concurrency: int
) -> SuiteResult:
    await _check_reachable(url)
    with _progress() as progress:
        task = progress.add_task("", total=len(cases))
        running: list[str] = []

        def started(case: StreamingEvalCase) -> None:
            running.append(case.name)
            progress.update(task, description=", ".join(running))

        def done(case: StreamingEvalCase, result: CaseResult) -> None:
            running.remove(case.name)
            mark = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
            progress.console.print(f"{mark} {case.name} ({result.duration_ms:.0f} ms)")
            progress.update(task, advance=1, description=", ".join(running))

        async with SpoolClient(url, key) as client:
            suite = StreamingEvalSuite(client=client, concurrency=concurrency, cases=cases)
            return await suite.run(on_case_start=started, on_case_done=done)


def _table(result: SuiteResult) -> Table:
    table = Table(title=f"{result.passed}/{result.total_cases} passed ({result.pass_rate:.0%})")
    for column in ("case", "result", "ms", "failed assertions"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for case in result.case_results:
        failed = [f"{a.assertion_type}: {a.detail}" for a in case.assertion_results if not a.passed]
        if case.error is not None:
            failed.insert(0, f"error: {case.error}")
        verdict = "[green]pass[/]" if case.passed else "[red]FAIL[/]"
        table.add_row(case.case_name, verdict, f"{case.duration_ms:.0f}", "\n".join(failed))
    return table


@click.command("eval")
@click.argument("cases_file", metavar="CASES.toml", type=click.Path(path_type=Path))
@client_options
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="write JUnit XML here")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="cases at once"
)
def eval_command(
    cases_file: Path,
    url: str,
    api_key: str | None,
    as_json: bool,
    junit: Path | None,
    concurrency: int,
) -> None:
    """Run a streaming evaluation suite (a TOML file of cases) against a running service."""
    try:
        cases = load_cases(cases_file)
        result = asyncio.run(_run(cases, url, api_key or None, concurrency))
    except (EvalFileError, Unreachable) as exc:
        click.echo(f"error: {exc}", err=True)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    if as_json:
        sys.stdout.write(result.to_json().decode() + "\n")
    else:
        Console(highlight=False).print(_table(result))
    if junit is not None:
        junit.write_text(to_junit_xml(result), encoding="utf-8")
    sys.exit(0 if result.passed == result.total_cases else 1)
