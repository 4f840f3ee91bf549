"""The NumPy backend: a segment's steps over whole columns, and the reference semantics.

Each typed expression is evaluated over the batch's columns with an `active` mask: the
rows for which the value is actually needed. Errors (division by zero, an undefined math
result, a result that is not finite) count only on active rows, so `x / y if y != 0 else 0`
fails nothing, exactly as the kernel's `?:` evaluates one side only. The first error of a
row wins and stops it; so does a false filter condition.

The OpenCL backend (opencl_backend.py) produces the same `Outcome` for the same input.
"""

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from adapters.gpu.cpu_share import share_out
from adapters.gpu.dtypes import NUMPY_TYPES, is_float
from adapters.gpu.kernel_expr import (
    CHECKED,
    Binary,
    Call,
    Cast,
    Col,
    Compare,
    Const,
    Logic,
    Node,
    Select,
    Unary,
)
from adapters.gpu.numpy_reduce import Array, Partials, reduce_numpy
from adapters.gpu.program import (
    DIVISION_BY_ZERO,
    NOT_ENTERED,
    NOT_FINITE,
    UNDEFINED,
    FilterStep,
    KernelStep,
    MapStep,
    Program,
    ReduceStep,
)

_FLOAT_ONE: Final = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "tanh": np.tanh,
}
_PLAIN: Final = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
_COMPARE: Final = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                   "gt": np.greater, "ge": np.greater_equal}


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


class Rows:
    """The rows a value is needed for, kept as terms and built into a mask only when an
    error must be recorded: errors are rare, and the common case costs nothing."""

    __slots__ = ("terms",)

    def __init__(self, terms: tuple[tuple[Array, bool], ...] = ()) -> None:
        self.terms = terms  # (bool array, negated)

    def where(self, cond: Array, negate: bool = False) -> "Rows":
        return Rows(self.terms + ((cond, negate),))

    def mask(self, n: int) -> Array:
        out = np.ones(n, dtype=np.bool_)
        for cond, negate in self.terms:
            out &= np.logical_not(cond) if negate else cond
        return out


def _maybe_not_finite(value: Array) -> bool:
    """A cheap first look, one pass and no allocation; the exact check follows only when it
    says maybe. A dot product with zeros is 0 for finite values and NaN as soon as one is
    infinite or NaN (0 * inf is NaN), and BLAS computes it faster than any reduction."""
    if _DOT_FINDS_NON_FINITE and value.ndim == 1 and value.dtype.kind == "f" and len(value) >= 64:
        zeros = _zeros.get(value.dtype)
        if zeros is None or len(zeros) < len(value):  # values are chunks: this happens once per type
            zeros = _zeros[value.dtype] = np.zeros(max(len(value), CHUNK), dtype=value.dtype)
        return not math.isfinite(float(np.dot(value, zeros[:len(value)])))
    # The sum of finite numbers is finite unless it overflows, and then the exact check finds nothing.
    return not math.isfinite(float(np.add.reduce(value, axis=None)))


_zeros: dict[Any, Array] = {}  # per float type, as long as a chunk: sliced to a value's length


def _dot_finds_non_finite() -> bool:
    """Whether this NumPy's BLAS keeps IEEE semantics in a dot product (0 * inf is NaN); a
    BLAS that skipped zeros would hide an infinity, so the plain sum is used instead."""
    with np.errstate(all="ignore"):
        for dtype in (np.float32, np.float64):
            zeros = np.zeros(256, dtype=dtype)
            for bad in (np.inf, -np.inf, np.nan):
                probe = np.ones(256, dtype=dtype)
                probe[137] = bad
                if math.isfinite(float(np.dot(probe, zeros))):
                    return False
    return True


_DOT_FINDS_NON_FINITE: Final = _dot_finds_non_finite()


class _Eval:
    def __init__(self, columns: dict[str, Array], code: Array, n: int) -> None:
        self.columns = columns
        self.code = code
        self.n = n
        self.failed = False  # some row failed in this step: only then look at `code`

    def fail(self, bad: Array, rows: Rows, code: int) -> None:
        mask = np.broadcast_to(bad, (self.n,)) & rows.mask(self.n) & (self.code == 0)
        if mask.any():
            np.copyto(self.code, np.uint32(code), where=mask)
            self.failed = True

    def check_finite(self, value: Array, rows: Rows, code: int) -> None:
        if _maybe_not_finite(value):  # a literal-only value is a 0-d array: checked too
            self.fail(~np.isfinite(value), rows, code)

    def into(self, node: Node, active: Rows, code: int, out: Array) -> Array:
        """The value of `node`, computed straight into `out` where the operation allows (a
        column written back to events), saving a copy of every written column."""
        if isinstance(node, Binary) and node.op in _PLAIN and out.dtype == NUMPY_TYPES[node.dtype]:
            a = self.value(node.a, active, code)
            b = self.value(node.b, active, code)
            return _PLAIN[node.op](a, b, out=out)
        if isinstance(node, Call) and node.fn in _FLOAT_ONE and out.dtype == NUMPY_TYPES[node.dtype]:
            result = _FLOAT_ONE[node.fn](self.value(node.args[0], active, code), out=out)
            if node.fn in CHECKED:
                self.check_finite(result, active, code + UNDEFINED)
            return result
        if isinstance(node, Select) and out.dtype == NUMPY_TYPES[node.dtype]:
            cond = self.value(node.cond, active, code)
            np.copyto(out, self.value(node.b, active.where(cond, negate=True), code))
            np.copyto(out, self.value(node.a, active.where(cond), code), where=cond)
            return out
        np.copyto(out, self.value(node, active, code), casting="unsafe")
        return out

    def value(self, node: Node, active: Rows, code: int) -> Array:
        if isinstance(node, Col):
            return self.columns[node.name]
        if isinstance(node, Const):
            return np.array(node.value, dtype=NUMPY_TYPES[node.dtype])  # a scalar: broadcast, never filled
        if isinstance(node, Cast):
            return np.asarray(self.value(node.x, active, code)).astype(NUMPY_TYPES[node.dtype])
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
                return np.logical_and(a, self.value(node.b, active.where(a), code))
            return np.logical_or(a, self.value(node.b, active.where(a, negate=True), code))
        if isinstance(node, Select):
            cond = self.value(node.cond, active, code)
            return np.where(cond, self.value(node.a, active.where(cond), code),
                            self.value(node.b, active.where(cond, negate=True), code))
        assert isinstance(node, Call)
        return self.call(node, active, code)

    def binary(self, node: Binary, active: Rows, code: int) -> Array:
        a = self.value(node.a, active, code)
        b = self.value(node.b, active, code)
        op = node.op
        if op == "add":
            return np.add(a, b)
        if op == "sub":
            return np.subtract(a, b)
        if op == "mul":
            return np.multiply(a, b)
        if op == "pow":
            result = np.power(a, b)
            self.check_finite(result, active, code + UNDEFINED)
            return result
        if not np.all(b):  # ndarray.all: one pass, no allocation; zeros are rare
            zero = b == 0
            self.fail(zero, active, code + DIVISION_BY_ZERO)
            b = np.where(zero, np.ones(1, dtype=np.asarray(b).dtype), b)
        if op == "div":
            return np.divide(a, b)
        if is_float(node.dtype):
            return np.floor_divide(a, b) if op == "floordiv" else np.remainder(a, b)
        # Integers floor like Python; -1 is special-cased so INT_MIN // -1 wraps, as in the kernel.
        minus_one = b == -1
        if np.any(minus_one):
            b = np.where(minus_one, 1, b).astype(np.asarray(b).dtype)
            return np.where(minus_one, np.negative(a), a // b) if op == "floordiv" else np.where(minus_one, 0, a % b)
        return np.floor_divide(a, b) if op == "floordiv" else np.remainder(a, b)

    def call(self, node: Call, active: Rows, code: int) -> Array:
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
            self.check_finite(result, active, code + UNDEFINED)
        return np.asarray(result).astype(NUMPY_TYPES[node.dtype], copy=False)


def element_steps(program: Program) -> list[MapStep | FilterStep | KernelStep]:
    return [s for s in program.steps if not isinstance(s, ReduceStep)]


def run_numpy(program: Program, columns: dict[str, Array], entered: Array, threads: int = 0) -> Outcome:
    """Run the steps over typed entry columns (`entered`: rows that converted).

    Rows go through in chunks of CHUNK, so a chain's temporaries stay in the CPU cache
    instead of streaming through memory once per operation (numexpr's trick). A batch of
    several chunks is shared out among `threads` threads (0: as many as the process may
    use, see cpu_share.py): every chunk writes only its own rows, so the outcome does not
    depend on the split."""
    n = len(entered)
    code = np.zeros(n, dtype=np.uint32)
    stage = np.empty(n, dtype=np.uint8)  # every row's stage is set by its chunk
    reduce = program.reduce
    keep = set(program.written) if reduce is None else {reduce.by} | {r.column for r in reduce.fields}
    keep.discard("")
    steps = element_steps(program)
    env_types = program.prefix(len(steps)).env
    out = {name: np.empty(n, dtype=NUMPY_TYPES[env_types[name]]) for name in keep if name in env_types}
    alive = entered.copy() if reduce is not None else None  # the reduce needs every row's outcome

    def run_span(first: int, last: int) -> None:
        with np.errstate(all="ignore"):  # per thread: NumPy keeps the error state per context
            for lo in range(first, last, CHUNK):
                hi = min(lo + CHUNK, last)
                rows = alive[lo:hi] if alive is not None else entered[lo:hi].copy()
                targets = {name: target[lo:hi] for name, target in out.items()}
                env = _run_chunk(program, steps, {k: v[lo:hi] for k, v in columns.items()}, rows,
                                 stage[lo:hi], code[lo:hi], targets)
                # An entry column kept for a reduce, or set by a kernel, is copied in. A column
                # may still be another's target (`set: {a: x, x: 0.1}` after x was written in
                # place): read every source before any target is written.
                written = {id(target) for target in targets.values()}
                copies = [(target, env[name].copy() if id(env[name]) in written else env[name])
                          for name, target in targets.items() if env[name] is not target]
                for target, value in copies:
                    target[:] = value

    share_out(run_span, n, CHUNK, threads)
    if reduce is not None:
        return Outcome({}, stage, code, reduce_numpy(reduce, out, alive, code, stage))
    return Outcome({name: out[name] for name in program.written}, stage, code)


CHUNK: Final = 65536


def _run_chunk(program: Program, steps: list[MapStep | FilterStep | KernelStep], env: dict[str, Array],
               alive: Array, stage: Array, code: Array, targets: dict[str, Array]) -> dict[str, Array]:
    """One chunk through the element-wise steps; `alive`, `stage` and `code` are views
    updated in place, and written columns land in `targets` (views of the outputs).
    Returns the columns after the last step."""
    n = len(alive)
    everyone = bool(alive.all())  # kept up to date below, so no pass per step asks again
    if not everyone:
        stage.fill(NOT_ENTERED)  # rows that entered get their stage below
    for j, step in enumerate(steps):
        rows = Rows() if everyone else Rows(((alive, False),))
        evaluator = _Eval(env, code, n)
        if isinstance(step, MapStep):
            results = []
            # A target may be written directly unless this step still reads its old value, or
            # the column has another type here than at the end (a later step changes it).
            reading = {id(env[c]) for c in env}
            for assign in step.assigns:
                target = targets.get(assign.column)
                if (target is not None and id(target) not in reading and len(step.assigns) == 1
                        and target.dtype == NUMPY_TYPES[assign.expr.dtype]):
                    value = evaluator.into(assign.expr, rows, assign.code, target)
                else:
                    value = evaluator.value(assign.expr, rows, assign.code)
                if is_float(assign.expr.dtype) and not _checked_call(assign.expr):
                    evaluator.check_finite(value, rows, assign.code + NOT_FINITE)
                results.append((assign.column, _full(value, n)))
            env.update(results)
            stopped = alive & (code != 0) if evaluator.failed else None
        elif isinstance(step, FilterStep):
            keep = _full(evaluator.value(step.cond, rows, step.code), n)
            stopped = alive & ~keep
            if evaluator.failed:
                stopped |= alive & (code != 0)
        else:
            raise KernelNeedsOpenCL(program.names[step.member])
        if stopped is not None:
            stage[stopped] = j
            alive &= ~stopped
            everyone = False
    if everyone:
        stage.fill(len(steps))
    else:
        stage[alive] = len(steps)
    return env


def _full(value: Array, n: int) -> Array:
    """`value` as n rows: a literal-only value (0-d) is broadcast, a column is itself."""
    return value if value.shape == (n,) else np.broadcast_to(value, (n,))


def _checked_call(node: Node) -> bool:
    """A checked function's result was already checked for being finite."""
    return isinstance(node, Call) and node.fn in CHECKED


class KernelNeedsOpenCL(Exception):
    """An `opencl.kernel` holds OpenCL C, which only an OpenCL device can run."""
