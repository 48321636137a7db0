"""Safe exported files: CSV cells a spreadsheet cannot run, file names without patient ids.

Every CSV riskfusion writes (problem tables, audit trail, bias-audit metrics, ablation table,
exported predictions) goes through :func:`neutralise_formulas` or :func:`safe_csv`, so a text
cell that a spreadsheet would read as a formula (``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``,
a leading tab or carriage return) is written with a leading single quote and shown as text
(OWASP "CSV injection"). Numbers are never changed: numeric values, and text that is a plain
number such as ``-3.5`` (a spreadsheet reads it as that number, never as a formula), keep their
form. Lines end in CRLF (RFC 4180), so that the CSV writer also quotes a cell holding a carriage
return, which a spreadsheet would otherwise take for a new row whose first cell could be a
formula. Must not import streamlit.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TextIO

import pandas as pd

__all__ = [
    "FORMULA_TRIGGERS",
    "export_file_name",
    "neutralise_cell",
    "neutralise_formulas",
    "safe_csv",
    "write_safe_csv",
]

# First characters that make Excel, LibreOffice or Google Sheets evaluate a cell (OWASP list,
# full-width forms included); a tab or carriage return also shifts what the cell begins with.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
CSV_LINE_END = "\r\n"


def neutralise_cell(value: object) -> object:
    """One cell, made safe to open in a spreadsheet; anything but risky text is returned as is.

    Examples
    --------
    >>> neutralise_cell("=HYPERLINK('http://x')"), neutralise_cell("@SUM(A1)")
    ("'=HYPERLINK('http://x')", "'@SUM(A1)")
    >>> neutralise_cell("-3.5"), neutralise_cell(-3.5), neutralise_cell("-1+1"), neutralise_cell("")
    ('-3.5', -3.5, "'-1+1", '')
    """
    if not isinstance(value, str) or not value:
        return value
    if value[0] in ("\t", "\r", "\n"):
        return "'" + value
    stripped = value.lstrip(" ")
    if stripped[:1] in FORMULA_TRIGGERS and not _PLAIN_NUMBER.fullmatch(stripped):
        return "'" + value
    return value


def _neutralise_labels(labels: pd.Index) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        return labels
    return pd.Index([neutralise_cell(label) for label in labels], name=labels.name)


def neutralise_formulas(frame: pd.DataFrame, *, index: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot run in a spreadsheet.

    Parameters
    ----------
    frame : DataFrame
        The table to export. Numeric, boolean and datetime columns are left untouched.
    index : bool, default=False
        Also neutralise the index labels (when the index is written).

    Returns
    -------
    DataFrame
        Same shape; risky text cells start with ``'``.

    Examples
    --------
    >>> frame = pd.DataFrame({"site": ["=1+1", "north"], "delta": [-0.2, 0.1]})
    >>> neutralise_formulas(frame).to_dict("list")
    {'site': ["'=1+1", 'north'], 'delta': [-0.2, 0.1]}
    """
    out = frame.copy()
    for position in range(frame.shape[1]):
        series = frame.iloc[:, position]
        dtype = series.dtype
        if (
            pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)
        ):
            continue
        cells = [neutralise_cell(value) for value in series.tolist()]
        if any(new is not old for new, old in zip(cells, series.tolist(), strict=True)):
            out.isetitem(position, pd.array(cells, dtype=object))
    out.columns = _neutralise_labels(frame.columns)
    if index:
        out.index = _neutralise_labels(frame.index)
    return out


def safe_csv(
    frame: pd.DataFrame,
    *,
    index: bool = False,
    index_label: str | None = None,
    header: bool = True,
) -> str:
    r"""``frame`` as CSV text with every risky cell neutralised (see :func:`neutralise_formulas`).

    Examples
    --------
    >>> safe_csv(pd.DataFrame({"value": ["+cmd|' /C calc'!A0", "-2", "a\r=1"]}))
    'value\r\n\'+cmd|\' /C calc\'!A0\r\n-2\r\n"a\r=1"\r\n'
    """
    clean = neutralise_formulas(frame, index=index)
    return str(
        clean.to_csv(
            index=index, index_label=index_label, header=header, lineterminator=CSV_LINE_END
        )
    )


def write_safe_csv(
    frame: pd.DataFrame, target: Path | TextIO, *, index: bool = False, header: bool = True
) -> None:
    """Write ``frame`` as neutralised CSV to a path or an open text file (``newline=""``)."""
    neutralise_formulas(frame, index=index).to_csv(
        target, index=index, header=header, lineterminator=CSV_LINE_END
    )


def export_file_name(
    stem: str, suffix: str, *, created: datetime, patient_id: str | None = None
) -> str:
    """A download's file name: no patient id unless the user asked for one.

    Parameters
    ----------
    stem : str
        What the file is, e.g. ``"patient-report"``.
    suffix : str
        Extension with its dot, e.g. ``".html"``.
    created : datetime
        When it was made (second resolution), so that successive downloads differ.
    patient_id : str or None, default=None
        Put this id in the name; only when the user chose to. Characters outside letters,
        digits, ``.``, ``_`` and ``-`` become ``_``.

    Examples
    --------
    >>> when = datetime(2026, 12, 7, 18, 5, 9)
    >>> export_file_name("patient-report", ".html", created=when)
    'patient-report-20261207-180509.html'
    >>> export_file_name("patient-report", ".html", created=when, patient_id="P/01 2")
    'patient-report-P_01_2-20261207-180509.html'
    """
    parts = [stem]
    if patient_id:
        parts.append(_SAFE_NAME.sub("_", patient_id).strip("._") or "patient")
    parts.append(created.strftime("%Y%m%d-%H%M%S"))
    return "-".join(parts) + suffix
