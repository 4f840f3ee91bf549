"""The NumPy backend's reduce: one batch's totals per group, which both backends hand over
as `Partials` (the OpenCL backend combines its work-items' slices into the same shape), and
the segment sums across batches or windows (reduce_window.py)."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.gpu.dtypes import is_float
from adapters.gpu.program import ReduceStep

Array = Any  # numpy.ndarray; NumPy's own stubs are too loose to help here


@dataclass
class Partials:
    """One batch's totals per group: `count[g]`, and per reduction name its sum (float64 or
    int64), min or max (the column's type; meaningless where count is 0). `mean` is a sum
    here; the segment divides when it emits."""

    count: Array  # int64 [groups]
    values: dict[str, Array]


def reduce_numpy(step: ReduceStep, env: dict[str, Array], alive: Array, code: Array, stage: Array) -> Partials:
    """Totals of the rows that went through every element-wise step; rows whose key is out
    of range fail at the reduce (their stage stays)."""
    groups = step.groups
    if step.by:
        key = env[step.by].astype(np.int64)
        bad = alive & ((key < 0) | (key >= groups))
        np.copyto(code, np.uint32(step.code + 1), where=bad)
        alive = alive & ~bad
    else:
        key = np.zeros(len(alive), dtype=np.int64)
    stage[alive] += 1
    keys = key[alive]
    count = np.bincount(keys, minlength=groups).astype(np.int64)
    values: dict[str, Array] = {}
    for r in step.fields:
        if r.fn == "count":
            continue
        column = env[r.column][alive]
        if r.fn in ("sum", "mean"):
            if is_float(r.dtype):
                values[r.name] = np.bincount(keys, weights=column.astype(np.float64), minlength=groups)
            else:
                total = np.zeros(groups, dtype=np.int64)
                np.add.at(total, keys, column.astype(np.int64))
                values[r.name] = total
        else:
            dtype = column.dtype
            start = extreme(dtype, r.fn == "min")
            out = np.full(groups, start, dtype=dtype)
            (np.minimum if r.fn == "min" else np.maximum).at(out, keys, column)
            values[r.name] = out
    return Partials(count, values)


def extreme(dtype: Any, low: bool) -> Any:
    """The identity of min (the largest value) or max (the smallest) for a dtype."""
    if np.issubdtype(dtype, np.floating):
        return np.inf if low else -np.inf
    if np.issubdtype(dtype, np.bool_):
        return low
    info = np.iinfo(dtype)
    return info.max if low else info.min
