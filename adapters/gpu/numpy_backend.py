"""The NumPy backend: a segment's steps over whole columns, and the reference semantics.

Each typed expression is evaluated over the batch's columns with an `active` mask: the
rows for which the value is actually needed. Errors (division by zero, an undefined math
result, a result that is not finite) count only on active rows, so `x / y if y != 0 else 0`
fails nothing, exactly as the kernel's `?:` evaluates one side only. The first error of a
row wins and stops it; so does a false filter condition.

The OpenCL backend (opencl_backend.py) produces the same `Outcome` for the same input.
"""

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from adapters.gpu.dtypes import NUMPY_TYPES, is_float
from adapters.gpu.kernel_expr import (
    CHECKED, Binary, Call, Cast, Col, Compare, Const, Logic, Node, Select, Unary,
)
from adapters.gpu.program import (
    DIVISION_BY_ZERO, NOT_FINITE, UNDEFINED, FilterStep, KernelStep, MapStep, Program, ReduceStep,
)

Array = Any  # numpy.ndarray; NumPy's own stubs are too loose to help here
NOT_ENTERED: Final = 255  # stage of a row that never entered (its conversion failed)

_FLOAT_ONE: Final = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "tanh": np.tanh,
}
_COMPARE: Final = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                   "gt": np.greater, "ge": np.greater_equal}


@dataclass
class Partials:
    """One batch's totals per group: `count[g]`, and per reduction name its sum (float64 or
    int64), min or max (the column's type; meaningless where count is 0). `mean` is a sum
    here; the segment divides when it emits."""

    count: Array  # int64 [groups]
    values: dict[str, Array]


@dataclass
class Outcome:
    """What the steps did to each row of a batch.

    `stage[i]` is the index of the step where row i stopped (filtered out, or failed with
    `code[i] != 0`), `len(program.steps)` when it went through them all, or NOT_ENTERED.
    `columns` holds every written column (empty when the segment ends with a reduce); rows
    that stopped hold garbage. `partials` is set when the segment ends with a reduce.
    """

    columns: dict[str, Array]
    stage: Array  # uint8
    code: Array  # uint32
    partials: Partials | None = None


class _Eval:
    def __init__(self, columns: dict[str, Array], code: Array, n: int) -> None:
        self.columns = columns
        self.code = code
        self.n = n

    def fail(self, mask: Array, code: int) -> None:
        np.copyto(self.code, np.uint32(code), where=mask & (self.code == 0))

    def value(self, node: Node, active: Array, code: int) -> Array:
        if isinstance(node, Col):
            return self.columns[node.name]
        if isinstance(node, Const):
            return np.full(self.n, node.value, dtype=NUMPY_TYPES[node.dtype])
        if isinstance(node, Cast):
            return self.value(node.x, active, code).astype(NUMPY_TYPES[node.dtype])
        if isinstance(node, Unary):
            x = self.value(node.x, active, code)
            return np.logical_not(x) if node.op == "not" else np.negative(x)
        if isinstance(node, Binary):
            return self.binary(node, active, code)
        if isinstance(node, Compare):
            return _COMPARE[node.op](self.value(node.a, active, code), self.value(node.b, active, code))
        if isinstance(node, Logic):
            a = self.value(node.a, active, code)
            if node.op == "and":
                return a & self.value(node.b, active & a, code)
            return a | self.value(node.b, active & ~a, code)
        if isinstance(node, Select):
            cond = self.value(node.cond, active, code)
            return np.where(cond, self.value(node.a, active & cond, code), self.value(node.b, active & ~cond, code))
        assert isinstance(node, Call)
        return self.call(node, active, code)

    def binary(self, node: Binary, active: Array, code: int) -> Array:
        a = self.value(node.a, active, code)
        b = self.value(node.b, active, code)
        op = node.op
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "pow":
            result = np.power(a, b)
            self.fail(active & ~np.isfinite(result), code + UNDEFINED)
            return result
        zero = b == 0
        self.fail(active & zero, code + DIVISION_BY_ZERO)
        safe = np.where(zero, np.ones(1, dtype=b.dtype), b)
        if op == "div":
            return a / safe
        if op == "floordiv":
            if not is_float(node.dtype):
                # Python floors; -1 is special-cased so INT_MIN // -1 wraps, as in the kernel.
                minus_one = safe == -1
                return np.where(minus_one, np.negative(a), a // np.where(minus_one, 1, safe).astype(safe.dtype))
            return np.floor_divide(a, safe)
        return np.remainder(a, safe) if is_float(node.dtype) else np.where(safe == -1, 0, a % safe)

    def call(self, node: Call, active: Array, code: int) -> Array:
        args = [self.value(a, active, code) for a in node.args]
        fn = node.fn
        floating = is_float(node.dtype)
        if fn in _FLOAT_ONE:
            result = _FLOAT_ONE[fn](args[0])
        elif fn == "pow":
            result = np.power(args[0], args[1])
        elif fn == "atan2":
            result = np.arctan2(args[0], args[1])
        elif fn == "hypot":
            result = np.hypot(args[0], args[1])
        elif fn == "abs":
            return np.abs(args[0])
        elif fn in ("floor", "ceil", "round"):
            if not floating:
                return args[0]
            return {"floor": np.floor, "ceil": np.ceil, "round": np.rint}[fn](args[0])
        elif fn in ("min", "max"):
            combine = np.minimum if fn == "min" else np.maximum
            result = args[0]
            for other in args[1:]:
                result = combine(result, other)
            return result
        else:  # clamp
            return np.minimum(np.maximum(args[0], args[1]), args[2])
        if fn in CHECKED:
            self.fail(active & ~np.isfinite(result), code + UNDEFINED)
        return result.astype(NUMPY_TYPES[node.dtype], copy=False)


def element_steps(program: Program) -> list[MapStep | FilterStep | KernelStep]:
    return [s for s in program.steps if not isinstance(s, ReduceStep)]


def run_numpy(program: Program, columns: dict[str, Array], entered: Array) -> Outcome:
    """Run the element-wise steps over typed entry columns (`entered`: rows that converted)."""
    n = len(entered)
    code = np.zeros(n, dtype=np.uint32)
    stage = np.where(entered, 0, NOT_ENTERED).astype(np.uint8)
    env = dict(columns)
    alive = entered.copy()
    steps = element_steps(program)
    with np.errstate(all="ignore"):
        for j, step in enumerate(steps):
            evaluator = _Eval(env, code, n)
            if isinstance(step, MapStep):
                results = []
                for assign in step.assigns:
                    value = evaluator.value(assign.expr, alive, assign.code)
                    if is_float(assign.expr.dtype):
                        evaluator.fail(alive & ~np.isfinite(value), assign.code + NOT_FINITE)
                    results.append((assign.column, value))
                env.update(results)
                stopped = alive & (code != 0)
            elif isinstance(step, FilterStep):
                keep = evaluator.value(step.cond, alive, step.code)
                stopped = alive & ((code != 0) | ~keep)
            else:
                raise KernelNeedsOpenCL(program.names[step.member])
            stage[stopped] = j
            alive &= ~stopped
    stage[alive] = len(steps)
    reduce = program.reduce
    if reduce is not None:
        partials = reduce_numpy(reduce, env, alive, code, stage)
        return Outcome({}, stage, code, partials)
    written = {name: env[name] for name in program.written if name in env}
    return Outcome(written, stage, code)


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
            start = _extreme(dtype, r.fn == "min")
            out = np.full(groups, start, dtype=dtype)
            (np.minimum if r.fn == "min" else np.maximum).at(out, keys, column)
            values[r.name] = out
    return Partials(count, values)


def _extreme(dtype: Any, low: bool) -> Any:
    """The identity of min (the largest value) or max (the smallest) for a dtype."""
    if np.issubdtype(dtype, np.floating):
        return np.inf if low else -np.inf
    if np.issubdtype(dtype, np.bool_):
        return low
    info = np.iinfo(dtype)
    return info.max if low else info.min


class KernelNeedsOpenCL(Exception):
    """An `opencl.kernel` holds OpenCL C, which only an OpenCL device can run."""
