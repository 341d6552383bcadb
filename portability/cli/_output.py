"""How commands print: a rich table for people, ``--json`` for scripts, one place for both."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_json", "print_record", "print_table", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


#: Widest cell in a table, in characters.
_MAX_CELL = 60


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2) + "\n")


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=False, highlight=False, width=_width())


def _width() -> int | None:
    return None if sys.stdout.isatty() else 160


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(to_jsonable(value))


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    empty: str = "nothing found",
    whole: Sequence[str] = (),
) -> None:
    """``rows`` as a table of ``columns`` (keys of each row); ``empty`` when there are none.

    Cells are cut to one line, except in the ``whole`` columns, which wrap.
    """
    if not rows:
        print(empty)
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        # One line per row: long values (errors) are cut; ``show`` and ``--json`` have them whole.
        if column in whole:
            table.add_column(column.replace("_", " "), overflow="fold")
        else:
            table.add_column(
                column.replace("_", " "), overflow="ellipsis", no_wrap=True, max_width=_MAX_CELL
            )
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    _console().print(table)


def print_record(record: Mapping[str, Any], *, title: str | None = None) -> None:
    """One object as aligned ``field: value`` lines (nested mappings become tables)."""
    if title:
        print(title)
    width = max((len(k) for k in record), default=0)
    for key, value in record.items():
        if isinstance(value, list) and not value:
            print(f"  {key.replace('_', ' '):<{width}} : none")
            continue
        if isinstance(value, list) and isinstance(value[0], Mapping):
            print(f"  {key}:")
            print_table(value, list(value[0].keys()))
            continue
        print(f"  {key.replace('_', ' '):<{width}} : {_cell(value)}")
