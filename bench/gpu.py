"""What a fused GPU segment costs, against the hardware's limits and against hand-written NumPy.

The chain (float32 columns a, b), four opencl.map nodes that the OpenCL backend fuses into
one kernel:  x = a * 1.5 + b;  y = sqrt(x * x + 1);  z = 2 * y if y > 1.2 else y;  w = z - a

On the OpenCL device (`--device`, same forms as HEADRACE_OPENCL_DEVICE; with `auto` and no GPU,
the first device, e.g. PoCL on the CPU, so the OpenCL path is still measured):
  device bandwidth   the better of a buffer->buffer enqueue_copy and a float4 copy kernel,
                     2 * bytes / profiled time (each byte is read once and written once)
  host<->device      enqueue_copy of N*4 bytes up (host->device, from pageable memory) and down
                     (into pinned memory), as the backend copies
  kernel             bytes the fused kernel must move / last_timing["kernel"], where bytes =
                     per row: `entered` (1) + entry columns read (a, b: 8) + `stage` (1) + `code`
                     (4) + written columns (x, y, z, w: 16) = 30; as a fraction of device bandwidth
  segment            up = `entered` + entry columns (9 B/row), down = stage + code + written
                     columns (21 B/row). The bus could move them in
                         ideal = up / up_GBps + down / down_GBps
                     (the harmonic combination: effective bus bandwidth = (up + down) / ideal), and
                     the fraction is ideal / (upload + kernel + download) from last_timing
                     (profiled); the wall-clock fraction (whole `run` call) is shown too.
Targets on a GPU: kernel >= 70% of device bandwidth, segment >= 70% of bus bandwidth.
Always, in this process on the same data: hand-written NumPy, run_numpy (Headrace's NumPy
backend, on every core the process may use, and again on one thread) and the OpenCL segment,
each timed wall-clock end to end (median of `--repeat`, the backends interleaved), and what
`auto` picks; its target on a CPU-only machine: at least as fast as hand-written NumPy.
Results are checked to agree (max |w| difference), and every row to have gone through every
step, after the timing. Usage:

    .venv/bin/python bench/gpu.py                          # 100M elements, median of 5
    .venv/bin/python bench/gpu.py --elements 10000000 --repeat 3 --json gpu.json
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Measure the working tree's backends, whatever is installed in the venv.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from adapters.gpu import devices
from adapters.gpu.cpu_share import usable_cpus
from adapters.gpu.numpy_backend import run_numpy
from adapters.gpu.program import build_program
from adapters.gpu.specs import typed_members
from engine.durations import duration_ms

MEMBERS: list[tuple[str, str, dict[str, object]]] = [
    ("s0", "opencl.map", {"columns": {"a": "float32", "b": "float32"}, "set": {"x": "a * 1.5 + b"}}),
    ("s1", "opencl.map", {"set": {"y": "sqrt(x * x + 1)"}}),
    ("s2", "opencl.map", {"set": {"z": "2 * y if y > 1.2 else y"}}),
    ("s3", "opencl.map", {"set": {"w": "z - a"}}),
]
COPY_KERNEL = ("__kernel void copy(__global const float4* s, __global float4* d) "
               "{ size_t i = get_global_id(0); d[i] = s[i]; }")
Array = Any


def hand_numpy(a: Array, b: Array) -> dict[str, Array]:
    """The chain as anyone would write it in NumPy (float32 throughout: scalars are weak)."""
    x = a * np.float32(1.5) + b
    y = np.sqrt(x * x + np.float32(1))
    z = np.where(y > np.float32(1.2), np.float32(2) * y, y)
    return {"x": x, "y": y, "z": z, "w": z - a}


def pick_device(setting: str) -> tuple[devices.DeviceInfo | None, str]:
    """The OpenCL device to measure, or None and why not."""
    if not devices.opencl_available():
        return None, f"PyOpenCL is not installed ({devices.INSTALL})"
    listed = devices.list_devices()
    if setting.strip().lower() in ("", "auto"):
        if not listed:
            return None, "no OpenCL device found"
        choice = devices.choose("auto")  # a GPU when there is one
        device = choice.device or next((d for d in listed if d.kind == "cpu"), listed[0])
        return device, choice.reason if choice.device else f"auto picks NumPy; measuring OpenCL on {device.label}"
    try:
        choice = devices.choose(setting)
    except devices.DeviceError as exc:
        return None, str(exc)
    return choice.device, choice.reason


def profiled(events: list[Any]) -> float:
    for e in events:
        e.wait()
    return float(sum(e.profile.end - e.profile.start for e in events)) * 1e-9


def bandwidths(context: Any, queue: Any, nbytes: int, repeat: int) -> dict[str, float]:
    """GB/s: device copy (best of command and kernel), host->device, device->host; medians."""
    import pyopencl as cl

    nbytes = max(16 * 256, nbytes - nbytes % (16 * 256))  # whole float4s, whole work-groups
    from adapters.gpu.opencl_backend import pinned_host

    host = np.ones(nbytes // 4, dtype=np.float32)
    # Downloads land in pinned memory, as the backend's do (uploads read the caller's arrays).
    _owner, back_bytes = pinned_host(context, queue, nbytes)  # _owner: the buffer the mapping belongs to
    back = back_bytes.view(np.float32)
    src, dst = (cl.Buffer(context, cl.mem_flags.READ_WRITE, nbytes) for _ in range(2))
    copy = cl.Program(context, COPY_KERNEL).build().copy
    times: dict[str, list[float]] = {"copy": [], "kernel": [], "up": [], "down": []}
    cl.enqueue_copy(queue, src, host).wait()  # first touch outside the timings
    cl.enqueue_copy(queue, dst, src).wait()
    copy(queue, (nbytes // 16,), None, src, dst).wait()
    for _ in range(repeat):
        times["up"].append(profiled([cl.enqueue_copy(queue, src, host)]))
        times["copy"].append(profiled([cl.enqueue_copy(queue, dst, src)]))
        times["kernel"].append(profiled([copy(queue, (nbytes // 16,), None, src, dst)]))
        times["down"].append(profiled([cl.enqueue_copy(queue, back, dst)]))
    gbps = {k: nbytes / statistics.median(v) / 1e9 for k, v in times.items()}
    gbps["copy"] *= 2
    gbps["kernel"] *= 2
    gbps["device"] = max(gbps["copy"], gbps["kernel"])
    return gbps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", type=int, default=100_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="auto", help="as HEADRACE_OPENCL_DEVICE: auto, cpu, a number, a name")
    parser.add_argument("--quick", action="store_true", help="200k elements, 1 repeat (for the tests)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    n, repeat = (200_000, 1) if args.quick else (max(1, args.elements), max(1, args.repeat))
    device, why = pick_device(args.device)
    if device is not None and 4 * n > device.max_alloc_bytes:  # a float32 column, and `code`, is 4 B/row
        fits = device.max_alloc_bytes // 4 // 1_000_000 * 1_000_000 or device.max_alloc_bytes // 4
        print(f"{device.label} allocates at most {device.max_alloc_bytes / 2**20:.0f} MiB per buffer: "
              f"{n:,} elements need {4 * n / 2**20:.0f} MiB, so measuring {fits:,}")
        n = fits
    program = build_program(typed_members(MEMBERS), duration_ms)
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    entered = np.ones(n, dtype=np.bool_)
    done = len(program.steps)
    runner = None
    if device is not None:
        import pyopencl as cl

        from adapters.gpu.opencl_backend import KernelBuildError, OpenclRunner

        try:  # a device that cannot open or build still leaves the NumPy comparison to make
            context, queue = devices.open_queue(device)
            runner = OpenclRunner(program, context, queue)
            runner.run({"a": a, "b": b}, entered)  # untimed: lazy device compiles, first-touch allocation
        except (devices.DeviceError, KernelBuildError, cl.Error) as exc:
            why = f"{device.label}: {exc}"
            device, runner = None, None
    threads = usable_cpus()
    print(f"chain of {done} opencl.map nodes over {n:,} float32 rows, median of {repeat}; "
          f"run_numpy uses {threads} thread(s), hand-written NumPy one")
    print(f"OpenCL: {device.label + ' (' + device.kind + ')' if device else 'skipped'}; {why}")

    def checked(outcome: Any) -> Array:  # every row must go through every step, without an error
        if not (np.all(outcome.stage == done) and not np.any(outcome.code)):
            raise SystemExit("a backend stopped rows that should have gone through the chain")
        return outcome.columns["w"]

    # Each timed call returns what the backend hands its caller; the check above runs after
    # the timing (it is this script's, not the segment's).
    backends: dict[str, Callable[[], Any]] = {
        "hand-written NumPy": lambda: hand_numpy(a, b)["w"],
        "run_numpy (Headrace NumPy)": lambda: run_numpy(program, {"a": a, "b": b}, entered)}
    if threads > 1:  # the same backend on one core, to show what the other cores add
        backends["run_numpy, 1 thread"] = lambda: run_numpy(program, {"a": a, "b": b}, entered, threads=1)
    if runner is not None:
        backends["OpenCL segment (wall)"] = lambda: runner.run({"a": a, "b": b}, entered)
    seconds: dict[str, list[float]] = {k: [] for k in backends}
    phases: dict[str, list[float]] = {"upload": [], "kernel": [], "download": []}
    results: dict[str, Array] = {}
    for _ in range(repeat):  # interleaved: a change in machine load hits every backend alike
        for label, fn in backends.items():
            results.pop(label, None)  # free the last result before timing the next
            start = time.perf_counter()
            results[label] = fn()
            seconds[label].append(time.perf_counter() - start)
        if runner is not None:
            for k, times in phases.items():
                times.append(runner.last_timing[k])
    results = {k: v if k == "hand-written NumPy" else checked(v) for k, v in results.items()}
    median = {k: statistics.median(v) for k, v in seconds.items()}
    hand = median["hand-written NumPy"]
    report: dict[str, Any] = {"elements": n, "repeat": repeat, "device": device.label if device else None,
                              "device_kind": device.kind if device else None, "backends": {}, "max_abs_diff": {}}

    print(f"\n{'backend':<28}|{'ms':>10} |{'M elements/s':>13} |{'speed vs hand (>=1: as fast)':>29}")
    for label, s in median.items():
        report["backends"][label] = {"ms": s * 1e3, "melem_per_s": n / s / 1e6, "speed_vs_hand": hand / s}
        print(f"{label:<28}|{s * 1e3:>10.1f} |{n / s / 1e6:>13.1f} |{hand / s:>29.2f}")
    auto = devices.choose("auto")
    auto_label = ("run_numpy (Headrace NumPy)" if auto.backend == "numpy"
                  else "OpenCL segment (wall)" if device is not None and auto.device == device else None)
    if auto_label is not None:
        speed = hand / median[auto_label]
        report["auto"] = {"picks": auto.reason, "speed_vs_hand": speed}
        print(f"{'auto -> ' + ('NumPy' if auto.backend == 'numpy' else 'OpenCL'):<28}|"
              f"{median[auto_label] * 1e3:>10.1f} |{n / median[auto_label] / 1e6:>13.1f} |{speed:>29.2f}")
        target = f"; CPU-only target, as fast as hand-written: {'met' if speed >= 1 else 'MISSED'}"
        print(f"  {auto.reason}{target if auto.backend == 'numpy' else ''}")
    else:
        print(f"auto picks {auto.reason}, which is not the measured device (run with --device auto)")

    ref = results["hand-written NumPy"]
    for label, w in results.items():
        if label != "hand-written NumPy":
            diff = float(np.max(np.abs(w - ref))) if n else 0.0
            report["max_abs_diff"][label + " vs hand"] = diff
            print(f"max |w - hand-written w|, {label}: {diff:.3g}")
    if runner is not None:
        diff = float(np.max(np.abs(results["OpenCL segment (wall)"] - results["run_numpy (Headrace NumPy)"])))
        report["max_abs_diff"]["OpenCL vs run_numpy"] = diff
        print(f"max |w OpenCL - w run_numpy|: {diff:.3g}")
        report.update(limits(runner, context, queue, device, n, repeat, phases, median["OpenCL segment (wall)"]))
    else:
        print("\nbandwidth, kernel and segment fractions: skipped (no OpenCL device)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def limits(runner: Any, context: Any, queue: Any, device: Any, n: int, repeat: int,
           phases: dict[str, list[float]], wall: float) -> dict[str, Any]:
    """The hardware table: bandwidths, then the kernel and the segment as fractions of them."""
    bw = bandwidths(context, queue, 4 * n, max(repeat, 3))
    gen = runner.generated
    size = {c: np.dtype(t).itemsize for c, t in runner.program.columns.items()}
    up = n * (1 + sum(size[c] for c in gen.inputs))  # entered + entry columns
    down = n * (1 + 4 + sum(np.dtype(t).itemsize for _, t in gen.outputs))  # stage + code + written
    moved = up + down  # the kernel reads and writes exactly what crosses the bus
    t = {k: statistics.median(v) for k, v in phases.items()}
    ideal = up / (bw["up"] * 1e9) + down / (bw["down"] * 1e9)
    segment = t["upload"] + t["kernel"] + t["download"]
    kernel_gbps = moved / t["kernel"] / 1e9
    gpu = device.kind == "gpu"

    def target(fraction: float) -> str:
        return ("met" if fraction >= 0.7 else "MISSED") if gpu else f"n/a ({device.kind})"

    print(f"\n{'measure':<34}|{'ms':>9} |{'GB/s':>8} |{'fraction':>9} | target 70% on a GPU")
    print(f"{'device copy (enqueue_copy)':<34}|{'':>9} |{bw['copy']:>8.2f} |{'':>9} |")
    print(f"{'device copy (float4 kernel)':<34}|{'':>9} |{bw['kernel']:>8.2f} |{'':>9} |")
    print(f"{'host->device':<34}|{'':>9} |{bw['up']:>8.2f} |{'':>9} |")
    print(f"{'device->host':<34}|{'':>9} |{bw['down']:>8.2f} |{'':>9} |")
    print(f"{f'fused kernel, {moved // n} B/row':<34}|{t['kernel'] * 1e3:>9.1f} |{kernel_gbps:>8.2f} |"
          f"{kernel_gbps / bw['device']:>9.2f} | {target(kernel_gbps / bw['device'])}")
    print(f"{'segment up+kernel+down (profiled)':<34}|{segment * 1e3:>9.1f} |{moved / segment / 1e9:>8.2f} |"
          f"{ideal / segment:>9.2f} | {target(ideal / segment)}")
    print(f"{'segment, whole run() (wall)':<34}|{wall * 1e3:>9.1f} |{moved / wall / 1e9:>8.2f} |{ideal / wall:>9.2f} |")
    print(f"  bus: {up / n:.0f} B/row up, {down / n:.0f} B/row down, ideal {ideal * 1e3:.1f} ms "
          f"({moved / ideal / 1e9:.2f} GB/s harmonic); upload {t['upload'] * 1e3:.1f} ms, "
          f"download {t['download'] * 1e3:.1f} ms; kernels in the segment: {runner.kernels}")
    return {"bandwidth_gbps": bw, "phases_ms": {k: v * 1e3 for k, v in t.items()},
            "kernel": {"bytes": moved, "gbps": kernel_gbps, "fraction": kernel_gbps / bw["device"]},
            "segment": {"up_bytes": up, "down_bytes": down, "ideal_ms": ideal * 1e3, "profiled_ms": segment * 1e3,
                        "fraction": ideal / segment, "wall_fraction": ideal / wall}}


if __name__ == "__main__":
    sys.exit(main())
