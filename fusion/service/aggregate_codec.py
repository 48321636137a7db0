"""Cohort views to JSON text and back, exactly: the payloads of the ``cohort_aggregates`` table.

Owns :func:`encode` and :func:`decode` for the records the cohort pages show
(:class:`~fusion.evaluation.performance.PerformanceReport`,
:class:`~fusion.evaluation.fairness.FairnessReport`,
:class:`~fusion.evaluation.importance.ShapSummary`,
:class:`~fusion.evaluation.risk_histograms.RiskHistograms`) and the DataFrames, Series, tuples
and numbers inside them. Floats are written with Python's shortest round-trip repr (NaN
included), column dtypes and index names are kept, so a decoded view equals the computed one.
Only the listed record types are rebuilt: nothing is unpickled or imported by name.
Streamlit is never imported here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.importance import ShapSummary
from fusion.evaluation.performance import PerformanceReport
from fusion.evaluation.risk_histograms import RiskHistograms

__all__ = ["decode", "encode"]

_RECORDS: dict[str, type] = {
    cls.__name__: cls for cls in (PerformanceReport, FairnessReport, ShapSummary, RiskHistograms)
}


def _plain(values: Any) -> list[Any]:
    """A column or index as JSON-able Python values (numpy scalars unwrapped, NaT as None)."""
    out = []
    for value in np.asarray(values, dtype=object).tolist():
        if isinstance(value, np.generic):
            value = value.item()
        elif value is pd.NA or value is pd.NaT:
            value = None
        out.append(value)
    return out


def _index(index: pd.Index) -> dict[str, Any]:
    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "name": index.name}
    if isinstance(index, pd.MultiIndex):
        return {
            "levels": [_index(index.get_level_values(k)) for k in range(index.nlevels)],
            "names": list(index.names),
        }
    return {"values": _plain(index), "dtype": str(index.dtype), "name": index.name}


def _restore_index(spec: dict[str, Any]) -> pd.Index:
    if "range" in spec:
        start, stop, step = spec["range"]
        return pd.RangeIndex(start, stop, step, name=spec["name"])
    if "levels" in spec:
        levels = [_restore_index(level) for level in spec["levels"]]
        multi: pd.Index = pd.MultiIndex.from_arrays(levels, names=spec["names"])
        return multi
    index: pd.Index = pd.Index(pd.array(spec["values"], dtype=spec["dtype"]), name=spec["name"])
    return index


def _encode(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": {
                "columns": _index(value.columns),
                "dtypes": [str(dtype) for dtype in value.dtypes],
                "data": [_plain(value.iloc[:, k]) for k in range(value.shape[1])],
                "index": _index(value.index),
            }
        }
    if isinstance(value, pd.Series):
        return {
            "__series__": {
                "name": value.name,
                "dtype": str(value.dtype),
                "data": _plain(value),
                "index": _index(value.index),
            }
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _RECORDS:
            raise TypeError(f"Cannot store a {name}; storable records are {sorted(_RECORDS)}.")
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__record__": name, "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"Cannot store a value of type {type(value).__name__} in a cohort view.")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__frame__" in value:
        spec = value["__frame__"]
        columns = _restore_index(spec["columns"])
        data = {
            k: pd.Series(pd.array(values, dtype=dtype) if dtype != "object" else values)
            for k, (values, dtype) in enumerate(zip(spec["data"], spec["dtypes"], strict=True))
        }
        frame = pd.DataFrame(data)
        for k, dtype in enumerate(spec["dtypes"]):
            if dtype == "object":
                frame[k] = frame[k].astype(object)
        frame.columns = columns
        frame.index = _restore_index(spec["index"])
        return frame
    if "__series__" in value:
        spec = value["__series__"]
        data = spec["data"] if spec["dtype"] == "object" else pd.array(spec["data"], spec["dtype"])
        series = pd.Series(data, dtype=spec["dtype"], name=spec["name"])
        series.index = _restore_index(spec["index"])
        return series
    if "__record__" in value:
        cls = _RECORDS[value["__record__"]]
        return cls(**{name: _decode(item) for name, item in value["fields"].items()})
    if "__tuple__" in value:
        return tuple(_decode(item) for item in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    raise ValueError(f"Unknown stored cohort view part with keys {sorted(value)}.")


def encode(value: Any) -> str:
    """``value`` (a record, frame, tuple, ...) as JSON text; see the module docstring."""
    return json.dumps(_encode(value), separators=(",", ":"))


def decode(text: str) -> Any:
    """The value :func:`encode` wrote."""
    return _decode(json.loads(text))
