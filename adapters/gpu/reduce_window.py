"""An `opencl.reduce`'s totals between emissions: per batch, or per tumbling window.

The backends hand over one batch's partial totals per group (numpy_reduce.Partials);
this adds them up and turns them into events. Windows are processing-time and aligned to
the epoch (`[k * size, (k + 1) * size)`), like the `aggregate` node's tumbling windows, and
carry `window_start` and `window_end` in epoch seconds. Groups with no event emit nothing.
"""

import math
from typing import Any

import numpy as np

from adapters.gpu.numpy_reduce import Partials
from adapters.gpu.program import ReduceStep
from engine.node import INFINITY, Batch


class ReduceTotals:
    def __init__(self, step: ReduceStep) -> None:
        self.step = step
        self.size_s = step.window_ms / 1000.0
        self.held: Partials | None = None
        self.window_start = 0.0

    def deadline(self) -> float:
        return self.window_start + self.size_s if self.held is not None and self.size_s else INFINITY

    def add(self, partials: Partials, now: float) -> Batch:
        """Take one batch's totals; returns the events due now."""
        if not self.size_s:
            return self.events(partials, None)
        emitted = self.close_due(now)
        if self.held is None:
            self.window_start = math.floor(now / self.size_s) * self.size_s
            self.held = partials
        else:
            self.held = self.merge(self.held, partials)
        return emitted

    def close_due(self, now: float) -> Batch:
        if self.held is None or not self.size_s or now < self.window_start + self.size_s:
            return []
        return self.close_all()

    def close_all(self) -> Batch:
        if self.held is None:
            return []
        held, self.held = self.held, None
        return self.events(held, (self.window_start, self.window_start + self.size_s))

    def merge(self, a: Partials, b: Partials) -> Partials:
        values: dict[str, Any] = {}
        for r in self.step.fields:
            if r.fn == "count":
                continue
            if r.fn in ("sum", "mean"):
                values[r.name] = a.values[r.name] + b.values[r.name]
            else:
                values[r.name] = (np.minimum if r.fn == "min" else np.maximum)(a.values[r.name], b.values[r.name])
        return Partials(a.count + b.count, values)

    def events(self, partials: Partials, window: tuple[float, float] | None) -> Batch:
        step = self.step
        count = partials.count
        groups = np.flatnonzero(count > 0)
        columns: dict[str, list[Any]] = {}
        if step.by:
            columns[step.by] = groups.tolist()
        counts = count[groups]
        for r in step.fields:
            if r.fn == "count":
                columns[r.name] = counts.tolist()
            elif r.fn == "mean":
                columns[r.name] = (partials.values[r.name][groups] / counts).tolist()
            else:
                columns[r.name] = partials.values[r.name][groups].tolist()
        names = list(columns)
        out: Batch = [dict(zip(names, row)) for row in zip(*columns.values())] if names else []
        if window is not None:
            for event in out:
                event["window_start"] = window[0]
                event["window_end"] = window[1]
        return out
