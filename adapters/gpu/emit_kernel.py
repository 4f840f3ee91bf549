"""A program's OpenCL C: one element-wise kernel for all its map, filter and kernel steps, and
a reduce kernel when it ends with opencl.reduce.

The element-wise kernel (`hr_rows`) keeps every column in a private variable from the first
step to the last, so a chain of nodes costs one pass over memory; only the columns leaving
the device (or feeding the reduce) are stored. The reduce kernel (`hr_reduce`) is
deterministic without atomics: work-item w totals rows w, w+W, w+2W, ... into its own slice
of the partial arrays, and the host adds the W slices in a fixed order.
"""

import re
from dataclasses import dataclass, field

from adapters.gpu.dtypes import C_TYPES, FLOAT32, FLOAT64, INT64, INT_RANGE, is_float
from adapters.gpu.emit_c import Emitter, helpers, is_c_identifier, literal
from adapters.gpu.program import NOT_ENTERED, NOT_FINITE, FilterStep, KernelStep, MapStep, Program, ReduceStep


@dataclass
class Generated:
    source: str
    inputs: list[str]  # entry columns the element-wise kernel reads, in argument order
    outputs: list[tuple[str, str]]  # (column, dtype) it stores to device buffers, in argument order
    reduce_inputs: list[tuple[str, bool]]  # (column, True: an output above / False: an entry column)
    accumulators: dict[str, str]  # reduction name -> type of its per-work-item partial totals
    # Per user kernel: its source's first generated line and line count, the function's first
    # and last generated lines, the member. Lines count from 1, as compilers report them.
    regions: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    rows_kernel: bool = True
    reduce_kernel: bool = False


class _Rows:
    """The element-wise kernel's body, step by step, tracking where each column lives."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.cols: dict[str, tuple[str, str, bool]] = {}  # column -> (local, dtype, holds the entry value)
        self.locals: dict[tuple[str, str], str] = {}  # (column, dtype) -> local
        self.loaded: dict[str, None] = {}  # entry columns read, in order
        self.temps = [0]
        self.used: set[tuple[str, str]] = set()
        self.lines: list[str] = []
        self.functions: list[tuple[list[str], int, int, int]] = []  # user helpers: lines, head, body lines, member
        for name, dtype in program.columns.items():
            self.cols[name] = (self.local(name, dtype), dtype, True)

    def local(self, column: str, dtype: str) -> str:
        """One variable per column and type (a map may store another type under a name)."""
        key = (column, dtype)
        if key not in self.locals:
            plain = f"v_{column}" if re.fullmatch(r"[A-Za-z0-9_]+", column) else ""
            taken = plain == "" or plain in self.locals.values()
            # `v<k>_` never equals `v_` + a name, so numbered locals cannot collide
            self.locals[key] = f"v{len(self.locals)}_{re.sub(r'[^A-Za-z0-9_]', '', column)}" if taken else plain
        return self.locals[key]

    def resolve(self, column: str) -> str:
        local, _, entry = self.cols[column]
        if entry:
            self.loaded[column] = None
        return local

    def store(self, em: Emitter, results: list[tuple[str, str, str]]) -> None:
        for column, dtype, temp in results:
            local = self.local(column, dtype)
            self.cols[column] = (local, dtype, False)
            em.lines.append(f"{local} = {temp};")

    def emit(self, j: int, step: MapStep | FilterStep | KernelStep) -> None:
        em = Emitter(self.resolve, self.temps)
        name = re.sub(r"[^A-Za-z0-9_.-]", "?", self.program.names[step.member])
        em.lines.append(f"// step {j}: '{name}'")
        if isinstance(step, MapStep):
            results = []
            for a in step.assigns:
                temp = em.temp(a.expr.dtype, em.value(a.expr, a.code))
                if is_float(a.expr.dtype):
                    em.lines.append(f"if (err == 0u && !isfinite({temp})) err = {a.code + NOT_FINITE}u;")
                results.append((a.column, a.expr.dtype, temp))
            self.store(em, results)  # after every `set` read the columns the step received
            em.lines.append(f"if (err != 0u) {{ st = {j}; break; }}")
        elif isinstance(step, FilterStep):
            cond = em.value(step.cond, step.code)
            em.lines.append(f"if (err != 0u || !{cond}) {{ st = {j}; break; }}")
        else:
            self.kernel(j, step, em)
            em.lines.append(f"if (err != 0u) {{ st = {j}; break; }}")
        self.used |= em.helpers
        self.lines += em.lines

    def kernel(self, j: int, step: KernelStep, em: Emitter) -> None:
        """The user's statements as a function, so `return;` ends the row's kernel early;
        outputs are pointers behind `#define name`, inputs are values (read-only)."""
        inputs = dict(step.inputs)
        params, args, defines, results = [], [], [], []
        for k, (name, dtype) in enumerate(step.inputs):
            if name not in dict(step.outputs):
                params.append(f"const {C_TYPES[dtype]} {name if is_c_identifier(name) else f'hr_i_{k}'}")
                args.append(self.resolve(name))
        for k, (name, dtype) in enumerate(step.outputs):
            # An output that is also an input starts as the input's value; others start at 0.
            start = em.cast(self.resolve(name), inputs[name], dtype) if name in inputs else "0"
            temp = em.temp(dtype, start)
            params.append(f"__private {C_TYPES[dtype]}* hr_o_{k}")
            args.append(f"&{temp}")
            if is_c_identifier(name):
                defines.append((name, f"hr_o_{k}"))
            results.append((name, dtype, temp))
        em.lines.append(f"hr_user_{j}({', '.join(args)});")
        for _, dtype, temp in results:
            if is_float(dtype):
                em.lines.append(f"if (err == 0u && !isfinite({temp})) err = {step.code + NOT_FINITE}u;")
        self.store(em, results)
        head = [f"void hr_user_{j}({', '.join(params) or 'void'}) {{"] + [f"#define {n} (*{p})" for n, p in defines]
        body = step.source.splitlines() or [""]
        self.functions.append((head + body + [f"#undef {n}" for n, _ in defines] + ["}"], len(head), len(body),
                               step.member))

    def kernel_source(self, outputs: list[tuple[str, str]], stages: int) -> tuple[list[str], list[str]]:
        inputs = list(self.loaded)
        params = ["const uint n", "__global const uchar* entered", "__global uchar* stage", "__global uint* code"]
        params += [f"__global const {C_TYPES[self.program.columns[c]]}* in_{k}" for k, c in enumerate(inputs)]
        params += [f"__global {C_TYPES[t]}* out_{k}" for k, (_, t) in enumerate(outputs)]
        entry = {self.cols_entry_local(c): k for k, c in enumerate(inputs)}
        decls = [f"{C_TYPES[dtype]} {local} = {f'in_{entry[local]}[i]' if local in entry else '0'};"
                 for (_, dtype), local in self.locals.items()]
        body = ["do {", *("    " + line for line in self.lines), f"    st = {stages};", "} while (0);"]
        lines = ["__kernel void hr_rows(" + ", ".join(params) + ") {",
                 "    const uint i = (uint)get_global_id(0);", "    if (i >= n) return;",
                 *("    " + d for d in decls), "    uint err = 0u;",
                 f"    uchar st = entered[i] ? (uchar)0 : (uchar){NOT_ENTERED};", "    if (st == (uchar)0) {",
                 *("        " + line for line in body), "    }", "    stage[i] = st;", "    code[i] = err;",
                 *(f"    out_{k}[i] = {self.cols[c][0]};" for k, (c, _) in enumerate(outputs)), "}"]
        return lines, inputs

    def cols_entry_local(self, column: str) -> str:
        return self.locals[(column, self.program.columns[column])]


def _accumulator(fn: str, dtype: str, fp64: bool) -> str:
    if fn in ("sum", "mean"):
        return (FLOAT64 if fp64 else FLOAT32) if is_float(dtype) else INT64
    return dtype


def _reduce(step: ReduceStep, types: dict[str, str], stages: int, fp64: bool,
            used: set[tuple[str, str]]) -> tuple[list[str], list[str], dict[str, str]]:
    columns = list(dict.fromkeys(([step.by] if step.by else []) + [r.column for r in step.fields if r.fn != "count"]))
    slot = {c: f"r_{k}" for k, c in enumerate(columns)}
    accumulators = {r.name: _accumulator(r.fn, types[r.column], fp64) for r in step.fields if r.fn != "count"}
    acc_names = {name: f"p_{k}" for k, name in enumerate(accumulators)}
    params = ["const uint n", "const uint W", "__global uchar* stage", "__global uint* code"]
    params += [f"__global const {C_TYPES[types[c]]}* {slot[c]}" for c in columns]
    params += ["__global long* p_count"] + [f"__global {C_TYPES[t]}* {acc_names[a]}" for a, t in accumulators.items()]
    init, update = ["p_count[base + g] = 0;"], ["p_count[at] += 1;"]
    for r in step.fields:
        if r.fn == "count":
            continue
        acc, p, x = accumulators[r.name], acc_names[r.name], f"{slot[r.column]}[i]"
        if r.fn in ("sum", "mean"):
            init.append(f"{p}[base + g] = 0;")
            update.append(f"{p}[at] = (long)((ulong){p}[at] + (ulong){x});" if acc == INT64
                          else f"{p}[at] += ({C_TYPES[acc]}){x};")
            continue
        low = r.fn == "min"
        if is_float(acc):
            start = f"({'' if low else '-'}({C_TYPES[acc]})INFINITY)"
            used.add((r.fn, acc))
            update.append(f"{p}[at] = hr_{r.fn}_{C_TYPES[acc]}({p}[at], {x});")
        else:
            start = literal(INT_RANGE[acc][1 if low else 0], acc)
            update.append(f"{p}[at] = {r.fn}({p}[at], {x});")
        init.append(f"{p}[base + g] = {start};")
    key = f"(long){slot[step.by]}[i]" if step.by else "0L"
    lines = ["__kernel void hr_reduce(" + ", ".join(params) + ") {",
             "    const uint w = (uint)get_global_id(0);", "    if (w >= W) return;",
             f"    const ulong base = (ulong)w * {step.groups}UL;",
             f"    for (uint g = 0; g < {step.groups}u; g++) {{", *("        " + s for s in init), "    }",
             "    for (ulong i = w; i < n; i += W) {",
             f"        if (stage[i] != (uchar){stages}) continue;",
             f"        const long key = {key};",
             *([f"        if (key < 0L || key >= {step.groups}L) {{ code[i] = {step.code + 1}u; continue; }}"]
               if step.by else []),
             f"        stage[i] = (uchar){stages + 1};",
             "        const ulong at = base + (ulong)key;", *("        " + s for s in update), "    }", "}"]
    return lines, columns, accumulators


def generate(program: Program, fp64: bool) -> Generated:
    """The program's source. `fp64`: the device has float64, so float sums total in double."""
    reduce = program.reduce
    steps = [s for s in program.steps if not isinstance(s, ReduceStep)]
    rows = _Rows(program)
    for j, step in enumerate(steps):
        rows.emit(j, step)
    kernels: list[str] = []
    outputs: list[tuple[str, str]] = []
    reduce_inputs: list[tuple[str, bool]] = []
    accumulators: dict[str, str] = {}
    if reduce is not None:
        types = {c: t for c, (_, t, _) in rows.cols.items()}
        lines, columns, accumulators = _reduce(reduce, types, len(steps), fp64, rows.used)
        # Columns the reduce reads stay on the device: entry buffers, or stores of hr_rows.
        reduce_inputs = [(c, not rows.cols[c][2]) for c in columns]
        outputs = [(c, types[c]) for c, computed in reduce_inputs if computed]
        kernels.append("\n".join(lines))
    else:
        outputs = [(c, t) for c, t in program.written.items()]
    inputs: list[str] = []
    if steps:
        lines, inputs = rows.kernel_source(outputs, len(steps))
        kernels.insert(0, "\n".join(lines))
    head = ["#pragma OPENCL FP_CONTRACT OFF"]  # NumPy rounds a * b + c twice; a fused multiply-add once
    helper_source = helpers(rows.used)
    text = helper_source + "\n" + "\n".join("\n".join(f[0]) for f in rows.functions) + "\n".join(kernels)
    if fp64 and re.search(r"\bdouble\b", text):
        head.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    out = head + helper_source.splitlines()
    regions = []
    for function, offset, count, member in rows.functions:
        regions.append((len(out) + offset + 1, count, len(out) + 1, len(out) + len(function), member))
        out += function
    for kernel in kernels:
        out += kernel.splitlines()
    return Generated("\n".join(out) + "\n", inputs, outputs, reduce_inputs, accumulators, regions,
                     rows_kernel=bool(steps), reduce_kernel=reduce is not None)
