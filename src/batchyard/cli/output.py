"""How the user commands print: rich tables sized to the terminal, key-value blocks, JSON for
`--output json`, times and job statuses.

Results go to stdout, progress and notes to stderr (docs/cli.md). Piped output is never cut.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "SUBMITTED": "dim",
    "PENDING": "yellow",
    "RUNNABLE": "cyan",
    "STARTING": "blue",
    "RUNNING": "bold blue",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
}


def console(stderr: bool = False) -> Console:
    """A console for human output on stdout, or on stderr for progress and notes."""
    made = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not made.is_terminal and "COLUMNS" not in os.environ:
        # Piped output is for grep and friends: never truncate or fold it to 80 columns.
        made.width = 1000
    return made


def print_json(value: Any) -> None:
    """The `--output json` form of a result."""
    print(json.dumps(value, indent=2, default=str))


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response without its ResponseMetadata, as the JSON output shows it."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def local_time(epoch_ms: Any) -> str:
    """An AWS epoch-milliseconds time in local time, or "" when there is none."""
    if not isinstance(epoch_ms, int | float):
        return ""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def status(status: str) -> str:
    """A job status in its colour (rich markup)."""
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]" if status in STATUS_STYLE else status


WRAPPING_COLUMNS = frozenset({"NAME", "REASON", "COMMAND", "COMPUTE ENVIRONMENTS"})
"""Free-text columns; ids, statuses and times never wrap, so they stay copyable."""


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column not in WRAPPING_COLUMNS)
    for row in rows:
        table.add_row(*row)
    return table


def _fits(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether the table fits with every fixed column whole and free text at >= 20 cells."""
    total = 2 * (len(columns) - 1)  # one cell of padding on each inner side
    for index, column in enumerate(columns):
        width = max([len(column)] + [Text.from_markup(row[index]).cell_len for row in rows])
        total += min(width, 20) if column in WRAPPING_COLUMNS else width
    return total <= console.width


def print_table(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    optional: Sequence[str] = (),
) -> None:
    """Print rows, leaving out optional columns (first named, first dropped) while the table
    cannot fit the console without cutting ids apart."""
    keep = list(columns)
    for dropped in optional:
        if _fits(console, keep, rows):
            break
        index = keep.index(dropped)
        keep.pop(index)
        rows = [[cell for i, cell in enumerate(row) if i != index] for row in rows]
    console.print(_table(keep, rows))


def key_values(pairs: Sequence[tuple[str, str]], title: str) -> Table:
    """A titled block of `key value` lines; empty values are left out."""
    table = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in pairs:
        if value != "":
            table.add_row(key, value)
    return table


def print_error(message: str) -> None:
    """The `batchyard: <message>` line on stderr that goes with exit code 2."""
    print(f"batchyard: {message}", file=sys.stderr)


def arn_id(arn: str) -> str:
    """The last part of an ARN: a job id, or a resource name."""
    return arn.rsplit("/", 1)[-1]
