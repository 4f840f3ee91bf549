"""Events become typed columns once on a segment's entry, and events again once on exit.

A declared column must hold a value of its type in every event: a missing field, text, a
float in an integer column, a number out of the type's range or a value that is not finite
fails that event (the first node's `on_error` decides), never the batch. The common case —
every value already fine — costs one pass to check types and one NumPy conversion.
"""

import math
from typing import Any, Final

import numpy as np

from adapters.gpu.dtypes import BOOL, INT32, INT_RANGE, NUMPY_TYPES, is_float
from engine.functions import type_name

Array = Any
_MISSING: Final = object()
_FLOAT32_MAX: Final = 3.4028234663852886e38


def _problem(value: object, name: str, dtype: str) -> str:
    """Why `value` cannot be a `dtype` column value; "" when it can."""
    if value is _MISSING:
        return f"missing field '{name}' (a {dtype} column of the GPU segment)"
    if dtype == BOOL:
        if isinstance(value, bool):
            return ""
        return f"field '{name}' is {type_name(value)}, not true/false (a bool column)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"field '{name}' is {type_name(value)}, not a number (a {dtype} column)"
    if is_float(dtype):
        if not math.isfinite(value):
            return f"field '{name}' is not a finite number"
        if dtype == "float32" and abs(value) > _FLOAT32_MAX:
            return f"field '{name}' is out of range for float32"
        return ""
    if isinstance(value, float):
        return f"field '{name}' is not a whole number (an {dtype} column)"
    low, high = INT_RANGE[dtype]
    return "" if low <= value <= high else f"field '{name}' is out of range for {dtype}"


def _fast(values: list[object], dtype: str) -> Array | None:
    """The column when every value is fine, else None (then the slow path finds which)."""
    kinds = set(map(type, values))
    if dtype == BOOL:
        return np.array(values, dtype=np.bool_) if kinds <= {bool} else None
    if is_float(dtype):
        if not kinds <= {int, float}:
            return None
        try:
            wide = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float range
            return None
        if not np.isfinite(wide).all() or (dtype == "float32" and (np.abs(wide) > _FLOAT32_MAX).any()):
            return None
        return wide.astype(NUMPY_TYPES[dtype])
    if not kinds <= {int}:
        return None
    try:
        column = np.array(values, dtype=np.int64)
    except OverflowError:
        return None
    if dtype == "int32":
        low, high = INT_RANGE[INT32]
        if len(column) and (column.min() < low or column.max() > high):
            return None
        return column.astype(np.int32)
    return column


def to_columns(events: list[dict[str, object]],
               columns: dict[str, str]) -> tuple[dict[str, Array], Array, dict[int, str]]:
    """(typed columns, rows that converted, row -> the first problem of each row that did not)."""
    n = len(events)
    out: dict[str, Array] = {}
    problems: dict[int, str] = {}
    for name, dtype in columns.items():
        values = [e.get(name, _MISSING) for e in events]
        column = _fast(values, dtype) if _MISSING not in values else None
        if column is None:
            column = np.zeros(n, dtype=NUMPY_TYPES[dtype])
            for i, value in enumerate(values):
                problem = _problem(value, name, dtype)
                if problem:
                    problems.setdefault(i, problem)
                else:
                    column[i] = value
        out[name] = column
    entered = np.ones(n, dtype=np.bool_)
    if problems:
        entered[list(problems)] = False
    return out, entered, problems


def to_events(events: list[dict[str, object]], rows: Array, written: dict[str, Array]) -> list[dict[str, object]]:
    """New events for `rows`: each a copy of its entry event with the written columns set.
    Values become plain Python numbers (`tolist`), so sinks and JSON see ints and floats."""
    names = list(written)
    picked = [written[name][rows].tolist() for name in names]
    chosen = [events[i] for i in rows.tolist()]
    result: list[dict[str, object]] = []
    append = result.append
    for event, values in zip(chosen, zip(*picked) if picked else ((),) * len(chosen)):
        copy = dict(event)
        copy.update(zip(names, values))
        append(copy)
    return result
