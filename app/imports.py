"""CSV imports, for the API and the CLI alike: reading a file (UTF-8, a BOM allowed, the header checked)
into numbered rows, and the report an import gives back (good rows kept, each bad row named with its
column)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidDataError

CSV_MAX_BYTES = 10_000_000  # a file larger than this is refused before it is read
MAX_ROWS = 100_000  # rows one import may hold
EXTRA_CELLS = "_extra_cells"  # set on a row with more cells than the header has columns


@dataclass(frozen=True)
class RowError:
    """Why one row was refused: its number (the file's line; the header is line 1), the column, the words."""

    row: int
    column: str
    message: str


@dataclass
class ImportReport:
    """What an import did: rows that made a new record, changed one, changed nothing; the refused rows."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def refused_rows(self) -> int:
        """How many rows were refused."""
        return len({e.row for e in self.errors})

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what the API answers and the CLI prints)."""
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "refused_rows": self.refused_rows,
                "errors": [{"row": e.row, "column": e.column, "message": e.message} for e in self.errors]}


def read_csv(raw: bytes, *, columns: Sequence[str], required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV file as (line number, {column: cell}); InvalidDataError naming ``file`` when the
    file is too large, not UTF-8, holds NUL characters, cannot be parsed or has a wrong header."""
    if len(raw) > CSV_MAX_BYTES:
        raise InvalidDataError(f"the file is larger than {CSV_MAX_BYTES // 1_000_000} MB",
                               errors={"file": ["too large"]})
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InvalidDataError(f"the file is not UTF-8 text (line {line})",
                               errors={"file": [f"line {line} is not UTF-8"]}) from None
    if "\x00" in text:
        raise InvalidDataError("the file holds NUL characters", errors={"file": ["is not a CSV text file"]})
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
    except csv.Error as exc:
        raise InvalidDataError(f"the CSV header cannot be read: {exc}", errors={"file": [f"line 1: {exc}"]}) from None
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    extra = [c for c in header if c not in columns]
    doubled = sorted({c for c in header if header.count(c) > 1})
    if not header:
        raise InvalidDataError("the file is empty", errors={"file": ["has no header line: "
                                                                    "name the columns " + ", ".join(columns)]})
    if missing or extra or doubled:
        raise InvalidDataError("the CSV header is not right", errors={"file": [
            *(f"missing column {c}" for c in missing), *(f"unknown column {c!r}" for c in extra),
            *(f"column {c} appears twice" for c in doubled)]})
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if len(rows) >= MAX_ROWS:
                raise InvalidDataError(f"at most {MAX_ROWS:,} rows per import",
                                       errors={"file": [f"has more than {MAX_ROWS:,} rows"]})
            cells = {name: (value or "") for name, value in row.items() if name is not None}
            if None in row:  # more cells than the header has columns
                cells[EXTRA_CELLS] = "yes"
            rows.append((reader.line_num, cells))  # the line the row ends on: its line, unless a cell spans lines
    except csv.Error as exc:
        raise InvalidDataError(f"the CSV cannot be read at line {reader.line_num}: {exc}",
                               errors={"file": [f"line {reader.line_num}: {exc}"]}) from None
    return rows
