"""The OpenCL backend: a program's generated kernels, built once per device, run over a batch.

`OpenclRunner` produces the same `Outcome` as numpy_backend.run_numpy (the reference). Entry
columns the kernels read go up, the element-wise kernel computes every step in registers,
and only the written columns, stage and code come back; with a reduce, the columns it reads
stay on the device and only the per-work-item partial totals come back, which the host adds
in a fixed order (the result does not depend on scheduling).
"""

import re
import threading
import time
import warnings
from typing import Any, Final, cast

import numpy as np
import pyopencl as cl

from adapters.gpu.devices import has_fp64
from adapters.gpu.dtypes import NUMPY_TYPES, is_float
from adapters.gpu.emit_kernel import Generated, generate
from adapters.gpu.numpy_backend import Outcome
from adapters.gpu.numpy_reduce import Partials, extreme
from adapters.gpu.program import KERNEL, NOT_ENTERED, KernelStep, Program

Array = Any  # numpy.ndarray
WORK_GROUP: Final = 256
REDUCE_ITEMS: Final = 1024  # work-items of the reduce: enough to fill a GPU, few slices to add
MAX_PARTIALS: Final = 1 << 22  # work-items x groups: bounds the partial arrays with many groups
# Compilers name the line as `file:LINE:COL: error: what` (clang, NVIDIA, AMD) or, PoCL,
# `error: file:LINE:COL <Spelling=...>: what`.
_ERROR_LINE: Final = re.compile(
    r"^(?:.*?\berror:\s*)?\S*?:(\d+)(?::\d+)?(?:\s*<[^>]*>)?:\s*(?:(?:fatal )?error:\s*)?(.*)$")

BUILDS = 0  # programs this process compiled; a runner for an equal program compiles nothing
_built: dict[tuple[int, int, tuple[str, ...], str], "cl.Program"] = {}
_lock = threading.Lock()  # runners may be created from several threads; build each source once


class KernelBuildError(Exception):
    """The OpenCL compiler refused a program. `message` is one line naming the node, the
    compiler's first error and the failing line."""

    def __init__(self, message: str, member: int | None = None, source_line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.member = member
        self.source_line = source_line


def _options(device: "cl.Device") -> tuple[str, ...]:
    # Single-precision `/` and sqrt may be off by ulps unless asked; NumPy's are correctly rounded.
    if device.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT:
        return ("-cl-fp32-correctly-rounded-divide-sqrt",)
    return ()


def _build(context: "cl.Context", device: "cl.Device", source: str, options: tuple[str, ...]) -> "cl.Program":
    global BUILDS
    # A built program belongs to its context; the cache holds the context, so its id stays unique.
    key = (context.int_ptr, device.int_ptr, options, source)
    with _lock:
        built = _built.get(key)
        if built is None:
            built = cl.Program(context, source)
            try:
                with warnings.catch_warnings():
                    # A successful build's log (`n == n` is always true...) would reach users as a
                    # PyOpenCL warning naming a temporary file; refusals are explained below.
                    warnings.simplefilter("ignore", cl.CompilerWarning)
                    built.build(options=list(options), devices=[device])
            except cl.Error as exc:
                raise _Refused(_log(built, device) or str(exc)) from None
            BUILDS += 1
            _built[key] = built
    return built


class _Refused(Exception):
    def __init__(self, log: str) -> None:
        super().__init__(log)
        self.log = log


def _log(built: Any, device: "cl.Device") -> str:
    """The compiler's log for `built` (a cl.Program, whose get_build_info PyOpenCL leaves untyped)."""
    try:
        return str(built.get_build_info(device, cl.program_build_info.LOG))
    except cl.Error:
        return ""


def _explain(program: Program, generated: Generated, log: str) -> KernelBuildError:
    """One line for the user: which node, the compiler's first error, and the line it names."""
    lines = generated.source.splitlines()
    errors = [line for line in log.splitlines() if re.search(r"\berror\b", line)]
    found = next((m for m in map(_ERROR_LINE.match, errors) if m), None)
    if found is None:
        refusal = next((ln.strip() for ln in log.splitlines() if "error" in ln.lower()), log.strip()[:200])
        return KernelBuildError(f"GPU segment '{program.names[0]}': the OpenCL compiler refused the kernel: {refusal}")
    number, error = int(found.group(1)), "error: " + found.group(2).strip()
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    text = text if len(text) <= 120 else text[:117] + "..."
    for first, count, start, end, member in reversed(generated.regions):
        if start <= number:  # in the user's function, or after it: an unbalanced brace shows later
            inside = first <= number < first + count
            where = f"source line {number - first + 1}, " if inside else "" if number <= end else "after its source, "
            step = next(s for s in program.steps if isinstance(s, KernelStep) and s.member == member)
            for k, (name, _) in enumerate(step.outputs):  # the user wrote the name, not its pointer
                error = re.sub(rf"\bhr_o_{k}\b", name, error)
            return KernelBuildError(
                f"{KERNEL} '{program.names[member]}': the OpenCL compiler refused the kernel: {error} "
                f"({where}generated line {number}: `{text}`)", member,
                number - first + 1 if inside else None)
    return KernelBuildError(
        f"GPU segment '{program.names[0]}': the OpenCL compiler refused the generated kernel: {error} "
        f"(generated line {number}: `{text}`)")


def _local_size(kernel: "cl.Kernel", device: "cl.Device") -> int:
    limit = min(WORK_GROUP, kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device))
    size = 1
    while size * 2 <= limit:
        size *= 2
    return size


def _padded(n: int, local: int) -> int:
    return (n + local - 1) // local * local


def pinned_host(context: "cl.Context", queue: "cl.CommandQueue", nbytes: int) -> tuple[Any, Array]:
    """`nbytes` of pinned host memory, as (the ALLOC_HOST_PTR buffer that owns it, its bytes
    mapped once and kept mapped); (None, plain host memory) where the driver refuses."""
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR
    try:
        buf = cl.Buffer(context, flags, nbytes)
        # PyOpenCL's stubs type the flags as the enum class and the result as the array alone;
        # at run time the flags are ints and the result is (array, event).
        read_write = cast(cl.map_flags, cl.map_flags.READ | cl.map_flags.WRITE)
        mapped, _ = cast(tuple[Array, Any], cl.enqueue_map_buffer(queue, buf, read_write, 0, (nbytes,),
                                                                   np.dtype(np.uint8), is_blocking=True))
    except cl.Error:
        return None, np.empty(nbytes, dtype=np.uint8)
    return buf, mapped


class OpenclRunner:
    """A program built for one device; `run` executes a batch.

    The arrays of the Outcome `run` returns are the runner's own download areas, valid until
    its next `run`: the segment turns them into events before it runs the next batch."""

    def __init__(self, program: Program, context: "cl.Context", queue: "cl.CommandQueue") -> None:
        self.program = program
        self.context = context
        self.queue = queue
        self.device = queue.device
        fp64 = has_fp64(self.device)
        if program.needs_fp64 and not fp64:
            raise KernelBuildError(f"GPU segment '{program.names[0]}': the device '{self.device.name.strip()}' has no "
                                   "float64 (cl_khr_fp64); declare float32 columns or choose another device")
        self.generated = generate(program, fp64)
        self.source: str = self.generated.source
        self.kernels: int = int(self.generated.rows_kernel) + int(self.generated.reduce_kernel)
        try:
            built = _build(context, self.device, self.source, _options(self.device))
        except _Refused as exc:
            raise _explain(program, self.generated, exc.log) from None
        # Kernel objects hold their arguments: one per runner, so runners never share them.
        self._rows = cl.Kernel(built, "hr_rows") if self.generated.rows_kernel else None
        self._reduce = cl.Kernel(built, "hr_reduce") if self.generated.reduce_kernel else None
        self._local = {k: _local_size(k, self.device) for k in (self._rows, self._reduce) if k is not None}
        self.profiling = bool(queue.properties & cl.command_queue_properties.PROFILING_ENABLE)
        self.last_timing: dict[str, float] = {"upload": 0.0, "kernel": 0.0, "download": 0.0}
        self._buffers: dict[str, cl.Buffer] = {}
        self._landing: dict[str, tuple[Any, Array]] = {}  # role -> (pinned buffer or None, host bytes)

    def run(self, columns: dict[str, Array], entered: Array) -> Outcome:
        entered = np.ascontiguousarray(entered, dtype=np.bool_)
        n = len(entered)
        gen, program, queue = self.generated, self.program, self.queue
        reduce = program.reduce
        groups = reduce.groups if reduce is not None else 0
        items = max(1, min(REDUCE_ITEMS, n, MAX_PARTIALS // max(groups, 1)))
        accumulators = {"": "int64"} | gen.accumulators if reduce is not None else {}  # "": the count
        if n == 0:  # no kernel runs on zero rows; the totals are their starting values
            totals = {name: np.empty((0, groups), dtype=NUMPY_TYPES[t]) for name, t in accumulators.items()}
            empty = {} if reduce is not None else {c: np.empty(0, dtype=NUMPY_TYPES[t]) for c, t in gen.outputs}
            return Outcome(empty, np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.uint32),
                           self._combine(totals) if reduce is not None else None)
        phases: dict[str, list[Any]] = {"upload": [], "kernel": [], "download": []}
        clock = [time.perf_counter()]
        hold: list[Array] = []  # host arrays of copies still in flight

        def phase_done(name: str) -> None:
            if not self.profiling:  # no event times: wall clock, the queue drained per phase
                queue.finish()
                now = time.perf_counter()
                self.last_timing[name] = now - clock[0]
                clock[0] = now

        def buffer(role: str, nbytes: int) -> "cl.Buffer":
            # Batches repeat their size: device buffers are kept and reused (kernels stop at n).
            buf = self._buffers.get(role)
            if buf is None or buf.size < nbytes:
                buf = self._buffers[role] = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(nbytes, 1))
            return buf

        def upload(role: str, array: Array) -> "cl.Buffer":
            buf = buffer(role, array.nbytes)
            if array.nbytes:
                hold.append(array)
                phases["upload"].append(cl.enqueue_copy(queue, buf, array, is_blocking=False))
            return buf

        def download(buf: "cl.Buffer", out: Array) -> Array:
            if out.nbytes:
                phases["download"].append(cl.enqueue_copy(queue, out.view(np.uint8), buf, is_blocking=False))
            return out

        # Entry columns any kernel reads (the reduce reads some straight from the entry buffers).
        needed = dict.fromkeys(gen.inputs + [c for c, computed in gen.reduce_inputs if not computed])
        entry = {c: upload(f"in {c}", self._host(columns[c], program.columns[c], n)) for c in needed}
        stage, code = buffer("stage", n), buffer("code", 4 * n)
        outputs = {c: buffer(f"out {c}", n * np.dtype(NUMPY_TYPES[t]).itemsize) for c, t in gen.outputs}
        partials: dict[str, tuple[cl.Buffer, Array]] = {}
        for name, dtype in accumulators.items():
            host = np.empty((items, groups), dtype=NUMPY_TYPES[dtype])
            partials[name] = (buffer(f"partial {name}", host.nbytes), host)
        if self._rows is None:  # a lone reduce: stage and code start on the host
            stage = upload("stage", np.where(entered, 0, NOT_ENTERED).astype(np.uint8))
            code = upload("code", np.zeros(n, dtype=np.uint32))
            entered_buf = None
        else:
            entered_buf = upload("entered", entered.view(np.uint8))
        phase_done("upload")
        if self._rows is not None:
            self._rows.set_args(np.uint32(n), entered_buf, stage, code, *(entry[c] for c in gen.inputs),
                                *(outputs[c] for c, _ in gen.outputs))
            local = self._local[self._rows]
            phases["kernel"].append(cl.enqueue_nd_range_kernel(queue, self._rows, (_padded(n, local),), (local,)))
        if self._reduce is not None:
            reads = [outputs[c] if computed else entry[c] for c, computed in gen.reduce_inputs]
            self._reduce.set_args(np.uint32(n), np.uint32(items), stage, code, *reads,
                                  *(buf for buf, _ in partials.values()))
            local = self._local[self._reduce]
            phases["kernel"].append(cl.enqueue_nd_range_kernel(queue, self._reduce, (_padded(items, local),), (local,)))
        phase_done("kernel")
        stage_host = download(stage, self._landing_area("stage", np.uint8, n))  # the kernels set every row
        code_host = download(code, self._landing_area("code", np.uint32, n))
        written = {} if reduce is not None else {
            c: download(outputs[c], self._landing_area(f"out {c}", NUMPY_TYPES[t], n)) for c, t in gen.outputs}
        totals = {name: download(buf, host) for name, (buf, host) in partials.items()}
        cl.wait_for_events([e for events in phases.values() for e in events])
        phase_done("download")
        hold.clear()
        if self.profiling:
            for name, events in phases.items():
                self.last_timing[name] = sum(e.profile.end - e.profile.start for e in events) * 1e-9
        outcome = Outcome(written, stage_host, code_host)
        if reduce is not None:
            outcome.partials = self._combine(totals)
        return outcome

    def _landing_area(self, role: str, dtype: Any, n: int) -> Array:
        """Where a download lands: host memory kept from batch to batch, so no copy faults
        in fresh pages, and pinned (a mapped ALLOC_HOST_PTR buffer) where the driver gives
        it, so a GPU's copy engine writes it directly instead of through a staging copy."""
        nbytes = n * np.dtype(dtype).itemsize
        held = self._landing.get(role)
        if held is None or held[1].nbytes < nbytes:  # doubling: a growing batch maps a few times, not each run
            self._landing[role] = held = pinned_host(self.context, self.queue,
                                                     max(nbytes, 2 * held[1].nbytes if held else 1))
        area: Array = held[1][:nbytes].view(dtype)
        return area

    @staticmethod
    def _host(array: Array, dtype: str, n: int) -> Array:
        host = np.ascontiguousarray(array, dtype=NUMPY_TYPES[dtype])
        if host.shape != (n,):
            raise ValueError(f"column has shape {host.shape}, expected ({n},)")
        return host.view(np.uint8) if host.dtype == np.bool_ else host

    def _combine(self, totals: dict[str, Array]) -> Partials:
        """Add the work-items' slices in a fixed order: numpy_reduce.reduce_numpy's contract."""
        reduce = self.program.reduce
        assert reduce is not None
        values: dict[str, Array] = {}
        for r in reduce.fields:
            if r.fn == "count":
                continue
            part = totals[r.name]
            if r.fn in ("sum", "mean"):
                if is_float(self.generated.accumulators[r.name]):
                    values[r.name] = part.astype(np.float64).sum(axis=0)
                else:  # int64 totals wrap as np.add.at does; a mean of integers is float64
                    values[r.name] = part.sum(axis=0).astype(NUMPY_TYPES[r.dtype])
            else:
                combine = np.minimum if r.fn == "min" else np.maximum
                values[r.name] = combine.reduce(part, axis=0, initial=extreme(part.dtype, r.fn == "min"))
        return Partials(totals[""].sum(axis=0).astype(np.int64), values)
