"""A segment's program: its members' parameters, typed once into steps both backends run.

A segment is a chain of `opencl.*` nodes (engine/chain.py finds them). Its first node
declares the columns events become on entry; each step then reads and writes typed columns
(which step a member is follows from its parameter class, params.py):

- `MapStep`: every `set` expression reads the columns as the step received them;
- `FilterStep`: rows whose condition is false stop here;
- `KernelStep`: the user's OpenCL C over declared inputs and outputs;
- `ReduceStep`: per-batch or per-window totals by a small integer key; it ends a segment.

Errors inside kernels are codes: `failure index * 4 + reason`, never 0, so one integer per
row says which expression failed and why.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from adapters.gpu.dtypes import BOOL, DTYPES, Defaults, is_float, is_int
from adapters.gpu.kernel_expr import KernelExprError, Node, type_expression, walk
from adapters.gpu.params import FilterParams, KernelParams, MapParams, MemberParams, ReduceParams
from engine import expr
from engine.params import Pairs

MAP: Final = "opencl.map"
FILTER: Final = "opencl.filter"
REDUCE: Final = "opencl.reduce"
KERNEL: Final = "opencl.kernel"
TYPES: Final = (MAP, FILTER, REDUCE, KERNEL)
REDUCTIONS: Final = ("sum", "min", "max", "count", "mean")
# What a segment's first node leaves unset (documented by the specs: adapters/gpu/specs.py).
DEFAULT_BATCH_SIZE: Final = 65536
DEFAULT_MAX_DELAY_MS: Final = 20

DIVISION_BY_ZERO: Final = 1
UNDEFINED: Final = 2
NOT_FINITE: Final = 3
NOT_ENTERED: Final = 255  # the stage of a row that never entered (its conversion failed)
REASONS: Final = {DIVISION_BY_ZERO: "division by zero",
                  UNDEFINED: "math function result is undefined (domain error or out of range)",
                  NOT_FINITE: "result is not a finite number"}


@dataclass(frozen=True)
class Failure:
    member: int
    label: str  # e.g. "set.y", "where"
    source: str
    reason: str = ""  # overrides REASONS (reductions: a key out of range)


@dataclass(frozen=True)
class Assign:
    column: str
    expr: Node
    code: int  # failure index * 4; add a reason


@dataclass(frozen=True)
class MapStep:
    member: int
    assigns: tuple[Assign, ...]


@dataclass(frozen=True)
class FilterStep:
    member: int
    cond: Node
    code: int


@dataclass(frozen=True)
class KernelStep:
    member: int
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    source: str
    code: int


@dataclass(frozen=True)
class Reduction:
    name: str  # output field
    fn: str  # sum min max count mean
    column: str  # "" for count()
    dtype: str  # of the result


@dataclass(frozen=True)
class ReduceStep:
    member: int
    by: str  # "" for one group
    groups: int
    fields: tuple[Reduction, ...]
    window_ms: int  # 0: per batch
    code: int  # + 1: the row's key is outside 0 .. groups-1


Step = MapStep | FilterStep | KernelStep | ReduceStep


class ProgramError(Exception):
    """A member's parameters cannot run in a segment. `path` is inside the member's `with:`;
    `error` carries the place inside an expression when there is one."""

    def __init__(self, member: int, path: tuple[str, ...], message: str, hint: str = "",
                 error: expr.ExprError | None = None) -> None:
        super().__init__(message)
        self.member = member
        self.path = path
        self.message = message
        self.hint = hint
        self.error = error


@dataclass
class Program:
    names: list[str]  # member node names, in chain order
    columns: dict[str, str]  # declared on entry
    defaults: Defaults
    steps: list[Step] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # columns written back to events, final types
    env: dict[str, str] = field(default_factory=dict)  # every column after the last step
    batch_size: int = DEFAULT_BATCH_SIZE
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    device_types: set[str] = field(default_factory=set)  # every type a kernel computes in
    prefixes: dict[int, "Program"] = field(default_factory=dict, repr=False)

    @property
    def reduce(self) -> ReduceStep | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, ReduceStep) else None

    @property
    def needs_fp64(self) -> bool:
        """Whether the device computes in float64 (reductions total on the host)."""
        return "float64" in self.device_types

    @property
    def needs_opencl(self) -> bool:
        return any(isinstance(s, KernelStep) for s in self.steps)

    def failure(self, code: int) -> str:
        """The message for a kernel error code (no payload values)."""
        f = self.failures[code // 4]
        return f"{f.reason or REASONS.get(code % 4, 'failed')} in {f.label} '{f.source}'"

    def prefix(self, steps: int) -> "Program":
        """The program of the first `steps` steps (the same object each time): what a row
        looked like when it reached step `steps`."""
        cached = self.prefixes.get(steps)
        if cached is None:
            written: dict[str, str] = {}
            for step in self.steps[:steps]:
                if isinstance(step, MapStep):
                    written.update((a.column, a.expr.dtype) for a in step.assigns)
                elif isinstance(step, KernelStep):
                    written.update(step.outputs)
            cached = Program(self.names[:steps], self.columns, self.defaults, self.steps[:steps], self.failures,
                             written, dict(self.columns) | written, self.batch_size, self.max_delay_ms,
                             set(self.device_types))
            self.prefixes[steps] = cached
        return cached

    def member_of(self, code: int) -> int:
        return self.failures[code // 4].member

    def _code(self, member: int, label: str, source: str, reason: str = "") -> int:
        self.failures.append(Failure(member, label, source, reason))
        return (len(self.failures) - 1) * 4


def _typed(program: Program, member: int, path: tuple[str, ...], source: str) -> Node:
    try:
        typed = type_expression(source, program.env, program.defaults, program.names[0])
    except KernelExprError as exc:
        raise ProgramError(member, path, exc.error.message, exc.error.hint, exc.error) from None
    program.device_types.update(n.dtype for n in walk(typed))
    return typed


def _dtype_map(member: int, key: str, value: Pairs | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, dtype in value or ():
        if dtype not in DTYPES:
            raise ProgramError(member, (key, name), f"unknown column type {dtype!r}",
                               "use one of: " + ", ".join(DTYPES))
        out[name] = dtype
    return out


DurationFn = Callable[[object], int | None]


def build_program(members: list[tuple[str, MemberParams]], duration_ms: DurationFn) -> Program:
    """Type a chain's members (name, parameters as their spec's `parse` built them) into one program."""
    head_name, head = members[0]
    columns = _dtype_map(0, "columns", head.columns)
    if not columns:
        raise ProgramError(0, (), f"'{head_name}' starts a GPU segment and must declare `columns`",
                           "e.g. columns: {amount: float32, qty: int32}")
    program = Program([m[0] for m in members], columns, Defaults.of(columns), env=dict(columns),
                      device_types=set(columns.values()))
    if head.batch_size is not None and head.batch_size > 0:
        program.batch_size = head.batch_size
    delay = duration_ms(head.max_delay)
    program.max_delay_ms = delay if delay is not None else program.max_delay_ms
    for j, (_name, params) in enumerate(members):
        misplaced = params.segment_keys() if j > 0 else ()
        if misplaced:
            key = misplaced[0]
            raise ProgramError(j, (key,), f"`{key}` belongs on '{head_name}', the segment's first node",
                               f"move `{key}` to '{head_name}'")
        if program.reduce is not None:
            raise ProgramError(j, (), "an opencl.reduce ends its segment", "")
        program.steps.append(_step(program, j, params, duration_ms))
    return program


def _step(program: Program, j: int, params: MemberParams, duration_ms: DurationFn) -> Step:
    if isinstance(params, MapParams):
        assigns = []
        for name, source in params.set:
            typed = _typed(program, j, ("set", name), source)
            assigns.append(Assign(name, typed, program._code(j, f"set.{name}", source)))
        for a in assigns:  # every expression read the incoming columns; now they are set
            program.env[a.column] = a.expr.dtype
            program.written[a.column] = a.expr.dtype
        return MapStep(j, tuple(assigns))
    if isinstance(params, FilterParams):
        cond = _typed(program, j, ("where",), params.where)
        if cond.dtype != BOOL:
            raise ProgramError(j, ("where",), "`where` must be a condition (true or false)", "compare, e.g. amount > 0")
        return FilterStep(j, cond, program._code(j, "where", params.where))
    if isinstance(params, KernelParams):
        return _kernel(program, j, params)
    if isinstance(params, ReduceParams):
        return _reduce(program, j, params, duration_ms)
    raise ProgramError(j, (), f"'{program.names[j]}' is not a GPU segment node")


def _kernel(program: Program, j: int, params: KernelParams) -> KernelStep:
    inputs = _dtype_map(j, "inputs", params.inputs)
    for name, dtype in inputs.items():
        have = program.env.get(name)
        if have is None:
            raise ProgramError(j, ("inputs", name), f"'{name}' is not a column of this segment",
                               f"declare it in `columns` of '{program.names[0]}'")
        if have != dtype:
            raise ProgramError(j, ("inputs", name), f"column '{name}' is {have} here, not {dtype}",
                               f"declare it as {have}, or convert it with an opencl.map first")
    outputs = _dtype_map(j, "outputs", params.outputs)
    step = KernelStep(j, tuple(inputs.items()), tuple(outputs.items()), params.source,
                      program._code(j, "source", "opencl.kernel"))
    program.device_types.update(outputs.values())
    for name, dtype in outputs.items():
        program.env[name] = dtype
        program.written[name] = dtype
    return step


def _reduce(program: Program, j: int, params: ReduceParams, duration_ms: DurationFn) -> ReduceStep:
    by, groups = params.by, params.groups
    if by:
        if by not in program.env:
            raise ProgramError(j, ("by",), f"'{by}' is not a column of this segment",
                               f"declare it in `columns` of '{program.names[0]}' (int32 or int64)")
        if not is_int(program.env[by]):
            raise ProgramError(j, ("by",), f"`by` must be an integer column, and '{by}' is {program.env[by]}",
                               "group by a small whole-number key, e.g. a sensor or region id")
        if groups is None:
            raise ProgramError(j, ("groups",), "`groups` is required with `by`",
                               "keys must be 0 .. groups-1, e.g. groups: 64")
    reductions = [_reduction(program, j, name, call) for name, call in params.fields]
    window_ms = 0
    if params.window is not None:
        ms = duration_ms(params.window)
        window_ms = ms if ms is not None and ms > 0 else 0
    count = groups if groups is not None and by else 1
    code = program._code(j, "by", by, f"key is outside 0 to {count - 1}")
    step = ReduceStep(j, by, count, tuple(reductions), window_ms, code)
    program.env = ({by: program.env[by]} if by else {}) | {r.name: r.dtype for r in reductions}
    program.written = dict(program.env)
    return step


def _reduction(program: Program, j: int, name: str, call: str) -> Reduction:
    text = call.strip()
    fn, _, rest = text.partition("(")
    fn = fn.strip()
    arg = rest.rstrip().removesuffix(")").strip() if rest.rstrip().endswith(")") else None
    hint = "write one of: sum(x), min(x), max(x), mean(x), count() over a column x"
    if fn not in REDUCTIONS or arg is None:
        raise ProgramError(j, ("fields", name), f"'{call}' is not a reduction", hint)
    if fn == "count":
        if arg:
            raise ProgramError(j, ("fields", name), "count() takes no argument", "write count()")
        return Reduction(name, fn, "", "int64")
    dtype = program.env.get(arg)
    if dtype is None:
        raise ProgramError(j, ("fields", name), f"'{arg}' is not a column of this segment",
                           "reductions read columns; compute expressions in an opencl.map before")
    if dtype == BOOL and fn != "sum":
        raise ProgramError(j, ("fields", name), f"{fn}() of a bool column", "sum(flag) counts the true values")
    if fn == "mean":
        return Reduction(name, fn, arg, "float64")
    if fn == "sum":
        return Reduction(name, fn, arg, "int64" if not is_float(dtype) else "float64")
    return Reduction(name, fn, arg, dtype)
