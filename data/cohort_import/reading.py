"""Reading a cohort table (CSV or Parquet) in bounded chunks, cells as text.

Owns :class:`TableReader` (header checks: delimiter, duplicated names, ragged rows), the chunk
size (:func:`chunk_rows`, about :data:`CHUNK_CELLS` cells a chunk) and :func:`read_table` for
small tables read whole (the image manifest). Imports only the sibling ``problems``.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow
import pyarrow.parquet as pq

from data.cohort_import.problems import (
    P_DELIMITER,
    P_DUPLICATE_COLUMN,
    P_RAGGED,
    P_UNREADABLE,
    ProblemLog,
)

__all__ = [
    "CHUNK_CELLS",
    "DELIMITERS",
    "NA_VALUES",
    "RAGGED_LISTED",
    "TableReader",
    "chunk_rows",
    "find_table",
    "read_table",
]

NA_VALUES: Final[list[str]] = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]

# Bounded memory: tables are read in chunks of about CHUNK_CELLS cells (rows x columns read);
# across chunks only each row's normalised id and row number are kept (about 20 bytes a row),
# and at most MAX_LISTED problem rows per file, column and problem (the rest are counted).
CHUNK_CELLS: Final[int] = 200_000
RAGGED_LISTED: Final[int] = 5
DELIMITERS: Final[dict[str, str]] = {";": "semicolon", "\t": "tab", "|": "pipe"}


def find_table(directory: Path, stem: str) -> Path | None:
    """The ``<stem>.csv`` or ``<stem>.parquet`` file of the folder, or None."""
    for suffix in (".csv", ".parquet"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


class TableReader:
    """A table file opened for reading in chunks: header checked, cells as text.

    The header is read and checked once (:meth:`open`): a file delimited by something other
    than commas and duplicated column names are problems. :meth:`chunks` then yields frames of
    at most ``rows`` rows, indexed by spreadsheet row (the header is row 1), with every cell as
    text and the missing markers of :data:`NA_VALUES` as None. CSV rows whose field count
    differs from the header's are left out of the frames and reported once per file by
    :meth:`report_ragged` (their cells would be shifted into the wrong columns).
    """

    def __init__(self, path: Path, columns: list[str], fields: list[str], n_fields: int) -> None:
        self.path = path
        self.name = path.name
        self.columns = columns  # unique stripped names, file order (first occurrence kept)
        self._fields = fields  # the file's own name (or position) of each column
        self.n_fields = n_fields  # fields of the header, duplicates included
        self.ragged: list[tuple[int, int]] = []
        self.n_ragged = 0

    @classmethod
    def open(cls, path: Path, problems: ProblemLog) -> TableReader | None:
        """Read and check the header; None (with the problem recorded) when unusable."""
        try:
            if path.suffix == ".csv":
                with path.open(encoding="utf-8-sig", newline="") as handle:
                    header = next(csv.reader(handle, skipinitialspace=True), None)
                if not header:
                    problems.add(path.name, P_UNREADABLE, "save it as UTF-8 CSV with a header row")
                    return None
                for delimiter, word in DELIMITERS.items():
                    found = sum(name.count(delimiter) for name in header)
                    if found >= len(header):  # more of them than commas: the file's delimiter
                        problems.add(
                            path.name,
                            P_DELIMITER.format(word),
                            f"save it as comma-separated CSV (UTF-8); the header has {found} "
                            f"{word}s and {len(header) - 1} commas",
                            value=header[0][:40],
                        )
                        return None
                names = [str(name).strip() for name in header]
                positions = [str(i) for i in range(len(header))]
            else:
                names_raw = [  # a pandas index stored as a column is not data
                    name
                    for name in pq.ParquetFile(path).schema_arrow.names
                    if not str(name).startswith("__index_level_")
                ]
                names = [str(name).strip() for name in names_raw]
                positions = [str(name) for name in names_raw]
        except (OSError, ValueError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
            problems.add(path.name, P_UNREADABLE, f"save it as UTF-8 CSV or Parquet ({err})")
            return None
        columns: list[str] = []
        fields: list[str] = []
        first: dict[str, int] = {}
        for index, (name, position) in enumerate(zip(names, positions, strict=True)):
            name = name or f"Unnamed: {index}"
            if name in first:
                problems.add(
                    path.name,
                    P_DUPLICATE_COLUMN,
                    f"columns {first[name] + 1} and {index + 1} are both named {name!r}: delete "
                    "the copy, or rename it and describe it in the schema",
                    column=name,
                )
                continue
            first[name] = index
            columns.append(name)
            fields.append(position)
        if path.suffix != ".csv" and len(columns) < len(names):
            return None  # Parquet columns are read by name: a duplicated name is ambiguous
        return cls(path, columns, fields, len(names))

    def chunks(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """Frames of ``columns`` (text, None = missing), :func:`chunk_rows` rows at most each.

        Raises
        ------
        OSError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException
            If the file cannot be read past the header (the caller records it).
        """
        rows = chunk_rows(len(columns))
        wanted = [self._fields[self.columns.index(column)] for column in columns]
        if self.path.suffix != ".csv":
            yield from self._parquet_chunks(columns, wanted, rows)
            return
        picks = [int(position) for position in wanted]
        pick: Callable[[list[str]], Any] = (
            operator.itemgetter(*picks) if len(picks) > 1 else lambda row: (row[picks[0]],)
        )
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            next(reader)  # the header, checked by open()
            block: list[Any] = []
            labels: list[int] = []
            row, yielded = 1, False
            for fields in reader:
                row += 1
                if len(fields) != self.n_fields:
                    if not fields or fields == [""]:
                        continue  # a blank line
                    self.n_ragged += 1
                    if len(self.ragged) < RAGGED_LISTED:
                        self.ragged.append((row, len(fields)))
                    continue
                block.append(pick(fields))
                labels.append(row)
                if len(block) >= rows:
                    yield self._frame(block, labels, columns)
                    block, labels, yielded = [], [], True
            if block or not yielded:  # an empty table still yields its (empty) columns
                yield self._frame(block, labels, columns)

    def _parquet_chunks(
        self, columns: Sequence[str], wanted: Sequence[str], rows: int
    ) -> Iterator[pd.DataFrame]:
        start = 2
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=wanted):
            frame = batch.to_pandas()
            frame = frame.astype(object).where(frame.notna(), None)
            frame = frame.map(lambda v: None if v is None else str(v))
            frame.columns = list(columns)
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame

    @staticmethod
    def _frame(block: list[Any], labels: list[int], columns: Sequence[str]) -> pd.DataFrame:
        frame = pd.DataFrame(block, columns=list(columns), index=labels, dtype=object)
        if frame.empty:
            return frame.astype("str")
        return frame.mask(frame.isin(NA_VALUES)).astype("str")

    def report_ragged(self, problems: ProblemLog) -> None:
        """One problem for every row whose field count differs from the header's."""
        if not self.n_ragged:
            return
        listed = ", ".join(f"{row} ({n} fields)" for row, n in self.ragged)
        more = self.n_ragged - len(self.ragged)
        extra = any(n > self.n_fields for _, n in self.ragged)
        hint = (
            "a value holds an unquoted comma (a decimal comma such as 1,5?): write decimals "
            'with a point, or quote the value ("1,5")'
            if extra
            else "a row is cut short: give it every column (empty cells for missing values)"
        )
        problems.add(
            self.name,
            P_RAGGED,
            f"the header has {self.n_fields} fields; {hint}. These rows were not checked further.",
            row=self.ragged[0][0],
            value=f"{self.n_ragged} row(s): {listed}" + (", ..." if more else ""),
        )


def chunk_rows(n_columns: int) -> int:
    """Rows per chunk so that a chunk holds about :data:`CHUNK_CELLS` cells."""
    return max(100, CHUNK_CELLS // max(n_columns, 1))


def read_table(path: Path, problems: ProblemLog) -> pd.DataFrame | None:
    """Read a small table (a manifest) whole, with the checks of :class:`TableReader`."""
    table = TableReader.open(path, problems)
    if table is None:
        return None
    try:
        frame = pd.concat(list(table.chunks(table.columns)))
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
        problems.add(path.name, P_UNREADABLE, f"save it as UTF-8 CSV or Parquet ({err})")
        return None
    table.report_ragged(problems)
    return frame
