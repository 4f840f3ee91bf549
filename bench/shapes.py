"""Graph shapes: each shape a YAML graph run with `engine run` beside hand-written Python.

Shapes (graphs in bench/shapes/, references in bench/shape_refs.py and bench/shape_http.py,
inputs from bench/shape_data.py: N seeded events of about 107 bytes, 1,000 users):

1. the reference pipeline of bench/peers: generate -> map -> filter -> aggregate -> file.write;
2. JSONL file -> map (two fields set, one removed) -> filter -> JSONL file;
3. CSV file -> map (int()/float()) -> aggregate by user -> JSONL file;
4. JSONL file -> route: one port to a keyed aggregate over tumbling 10-minute event-time
   windows, one to a keyed total, `unmatched` to null;
5. two generate sources merged into one map (two `from:` inputs) -> dedupe -> JSONL file;
6. http.listen -> map -> file.write under a local aiohttp client POSTing NDJSON batches
   from many tasks at once, beside a bare aiohttp server doing the same work;
7. shape 2 with its first edge `durable: true`, beside a raw LMDB append + pop loop
   (py-lmdb, MessagePack, one synced transaction per batch of 1024 each way).

Every run is a fresh process; its peak RSS comes from `wait4`. Every output is compared by
value with the stdlib loop's (in order, except shapes 5 and 6, whose inputs interleave); a
difference, or a failed run, makes the exit status 1.

Rate: shapes 1-5 and 7 run at N/5 and N events, best of --repeat each, and events/s is the
slope between the two sizes, so start-up (imports, loading the graph) cancels. Shape 6
runs at N only: its time is the client's, from the first request sent to the last 202.

    .venv/bin/python bench/shapes.py                  # N = 1,000,000, best of 3
    .venv/bin/python bench/shapes.py --quick          # N = 20,000, one run each: checks, not numbers
    .venv/bin/python bench/shapes.py --only 2,3 --json out.json
    .venv/bin/python bench/shapes.py --memory         # shapes 2-5 at 1M and 10M: is peak RSS flat?
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import shape_data
import shape_http
from peers import headrace_graph
from shape_run import Child, Spawner, orjson, same_output

BENCH = Path(__file__).resolve().parent
GRAPHS = BENCH / "shapes"
ENGINE = Path(sys.executable).parent / "engine"  # the console script of this environment
DEFAULT_COUNT, QUICK_COUNT = 1_000_000, 20_000
MEMORY_SHAPES, MEMORY_GROWTH, MEMORY_TOLERANCE = (2, 3, 4, 5), 10, 0.10


@dataclass(frozen=True)
class Runner:
    key: str  # "engine", or the variant bench/shape_refs.py takes: stdlib | orjson | csv
    label: str


ENGINE_RUNNER = Runner("engine", "Headrace (engine run)")
STDLIB = Runner("stdlib", "Python loop, json")
ORJSON = Runner("orjson", "Python loop, orjson")


@dataclass(frozen=True)
class Shape:
    number: int
    title: str
    graph: str  # in bench/shapes/; "" for shape 1, which is bench/peers' graph
    data: str  # the input: "jsonl", "csv", or "" (the graph generates its events)
    ordered: tuple[bool, ...]  # one per output file: whether the order is compared too
    references: tuple[Runner, ...]  # the first is the loop every output is compared with
    http: bool = False


SHAPES = {s.number: s for s in (
    Shape(1, "reference pipeline", "", "", (True,), (Runner("stdlib", "Python loop (bench/peers)"),)),
    Shape(2, "JSONL -> map -> filter -> JSONL", "jsonl_etl.yaml", "jsonl", (True,), (STDLIB, ORJSON)),
    Shape(3, "CSV -> map -> aggregate -> JSONL", "csv_totals.yaml", "csv", (True,),
          (Runner("stdlib", "Python loop, str.split"), Runner("csv", "Python loop, csv.DictReader"))),
    Shape(4, "route -> windowed aggregate + total", "route_windows.yaml", "jsonl", (True, True), (STDLIB, ORJSON)),
    Shape(5, "2 sources -> map -> dedupe -> JSONL", "merge_dedupe.yaml", "", (False,), (STDLIB, ORJSON)),
    Shape(6, "http.listen -> map -> file.write", "http_ingest.yaml", "jsonl", (False,),
          (Runner("stdlib", "aiohttp handler, json"), Runner("orjson", "aiohttp handler, orjson")), http=True),
    Shape(7, "shape 2 with a durable edge", "durable_jsonl.yaml", "jsonl", (True,),
          (Runner("stdlib", "py-lmdb loop, json"), Runner("orjson", "py-lmdb loop, orjson"))),
)}


@dataclass
class Result:
    shape: Shape
    runner: Runner
    times: dict[int, list[float]] = field(default_factory=dict)  # size -> seconds per run
    peaks: dict[int, float] = field(default_factory=dict)  # size -> largest peak RSS, MiB
    status: str = "ok"  # ok | failed | skipped
    reason: str = ""
    http: dict[str, float] = field(default_factory=dict)  # shape 6: requests, retried, requests/s

    def rate(self, sizes: tuple[int, ...]) -> float | None:
        """Events/s: the slope between the sizes, or events / client time for one size; None
        when noise made the larger size no slower."""
        if self.status != "ok":
            return None
        if len(sizes) == 1:
            return sizes[0] / min(self.times[sizes[0]])
        small, large = min(self.times[sizes[0]]), min(self.times[sizes[1]])
        return (sizes[1] - sizes[0]) / (large - small) if large > small else None


@dataclass
class Context:
    work: Path
    inputs: dict[int, dict[str, Path]]  # size -> "jsonl"/"csv" -> file
    env: dict[str, str]
    http_batch: int
    http_concurrency: int
    spawner: Spawner


def child_env(ctx: Context, extra: dict[str, str]) -> dict[str, str]:
    return {**ctx.env, **extra}


def timeout_for(size: int) -> float:
    return 120 + size / 10_000  # far beyond any healthy run; only a hung child reaches it


def outputs_of(shape: Shape, folder: Path, tag: str) -> list[Path]:
    return [folder / f"{tag}_{index}.jsonl" for index in range(len(shape.ordered))]


def batch_command(shape: Shape, runner: Runner, size: int, ctx: Context, outs: list[Path],
                  state: Path) -> tuple[list[str], dict[str, str]]:
    data = ctx.inputs.get(size, {}).get(shape.data)
    if runner is ENGINE_RUNNER:
        graph = (headrace_graph.write_graph(ctx.work, size, outs[0]) if shape.number == 1 else GRAPHS / shape.graph)
        extra = {"SHAPE_OUTPUT": str(outs[0]), "SHAPE_SOURCE_COUNT": str(size // 2), "HEADRACE_STATE_DIR": str(state)}
        if data:
            extra["SHAPE_INPUT"] = str(data)
        if len(outs) > 1:
            extra["SHAPE_OUTPUT_2"] = str(outs[1])
        return [str(ENGINE), "run", str(graph)], child_env(ctx, extra)
    command = [sys.executable, str(BENCH / "shape_refs.py"), str(shape.number), runner.key,
               "--count", str(size), "--output", str(outs[0]), "--state", str(state)]
    if data:
        command += ["--input", str(data)]
    if len(outs) > 1:
        command += ["--output2", str(outs[1])]
    return command, ctx.env


def run_batch(shape: Shape, runner: Runner, size: int, ctx: Context, outs: list[Path]) -> tuple[float, float, str]:
    """(seconds, peak MiB, '' or why it failed) of one whole run."""
    state = ctx.work / "state"
    state.mkdir()
    command, env = batch_command(shape, runner, size, ctx, outs, state)
    child = Child(ctx.spawner, command, ctx.work, env)
    finished = child.wait(timeout_for(size))
    shutil.rmtree(state)
    stderr = child.stderr_tail()
    if not finished:
        return child.seconds, child.peak_mib, f"no exit within {timeout_for(size):.0f} s: {stderr}"
    return child.seconds, child.peak_mib, "" if child.status == 0 else f"exit {child.status}: {stderr}"


def run_http(shape: Shape, runner: Runner, size: int, ctx: Context, outs: list[Path],
             payloads: list[bytes]) -> tuple[float, float, str, dict[str, float]]:
    """Starts the server, loads it from this process, then stops it with SIGINT (the engine
    drains); (client seconds, peak MiB, '' or why it failed, request counts)."""
    port = shape_http.free_port()
    if runner is ENGINE_RUNNER:
        command = [str(ENGINE), "run", str(GRAPHS / shape.graph)]
        env = child_env(ctx, {"SHAPE_PORT": str(port), "SHAPE_OUTPUT": str(outs[0]),
                              "SHAPE_QUEUE_BATCHES": str(ctx.http_concurrency)})
    else:
        command = [sys.executable, str(BENCH / "shape_http.py"), str(port), str(outs[0]), runner.key]
        env = ctx.env
    child = Child(ctx.spawner, command, ctx.work, env)
    load, problem = None, ""
    if not shape_http.wait_for_port(port, lambda: not child.exited()):
        problem = f"nothing listened on port {port}"
    else:
        try:
            load = shape_http.post_all(port, payloads, ctx.http_concurrency)
        except Exception as error:  # the server's exit status and stderr, below, say more
            problem = f"client: {error}"
    child.interrupt()
    finished = child.wait(timeout_for(size))
    stderr = child.stderr_tail()
    if load is None or not finished or child.status != 0:
        why = [problem, "" if finished else "no exit after SIGINT", f"exit {child.status}" if child.status else ""]
        return 0.0, child.peak_mib, "; ".join(w for w in why if w) + f": {stderr}", {}
    counts = {"requests": load.requests, "retried_503": load.retried, "requests_per_s": load.requests / load.seconds}
    return load.seconds, child.peak_mib, "", counts


def measure_shape(shape: Shape, sizes: tuple[int, ...], repeat: int, ctx: Context,
                  validate_problem: str) -> list[Result]:
    runners = [*shape.references, ENGINE_RUNNER]
    results = [Result(shape, r, {s: [] for s in sizes}) for r in runners]
    for result in results:
        if result.runner is ENGINE_RUNNER and validate_problem:
            result.status, result.reason = "failed", validate_problem
        if result.runner.key == "orjson" and orjson is None:
            result.status, result.reason = "skipped", "orjson is not installed (.venv/bin/pip install orjson)"
    expected: dict[int, list[Path]] = {}  # size -> the first reference's outputs
    folder = ctx.work / "out"
    folder.mkdir()
    # Sizes and runners alternate within each repeat, so drift in machine load hits all alike.
    for attempt in range(repeat):
        for size in sizes:
            payloads = shape_http.bodies(ctx.inputs[size]["jsonl"], size, ctx.http_batch) if shape.http else []
            for result in results:
                if result.status != "ok":
                    continue
                tag = f"{result.runner.key}_{size}_{attempt}"
                outs = outputs_of(shape, folder, tag)
                print(f"  shape {shape.number}: {result.runner.label}, {size:,} events, run {attempt + 1}/{repeat}",
                      file=sys.stderr)
                if shape.http:
                    seconds, peak, problem, http = run_http(shape, result.runner, size, ctx, outs, payloads)
                    if not problem and seconds < min(result.times[size], default=float("inf")):
                        result.http = http  # the counts of the run whose time is quoted
                else:
                    seconds, peak, problem = run_batch(shape, result.runner, size, ctx, outs)
                if not problem and size in expected:
                    problem = "; ".join(p for p in (same_output(want, got, ordered) for want, got, ordered
                                                    in zip(expected[size], outs, shape.ordered)) if p)
                    for out in outs:
                        out.unlink(missing_ok=True)
                elif not problem:
                    expected[size] = outs  # the first reference's first run: what every run must match
                if problem:
                    result.status, result.reason = "failed", f"at {size:,} events: {problem}"
                    continue
                result.times[size].append(seconds)
                result.peaks[size] = max(result.peaks.get(size, 0.0), peak)
    shutil.rmtree(folder)
    return results


def cell(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def markdown(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def report(results: list[Result], sizes_of: dict[int, tuple[int, ...]], memory: bool) -> list[dict[str, object]]:
    rows = [["shape", "runtime", "s at N", "events/s", "vs stdlib loop", "vs orjson/csv loop", "peak RSS MiB",
             "output"]]
    data: list[dict[str, object]] = []
    for result in results:
        shape, sizes = result.shape, sizes_of[result.shape.number]
        rate = result.rate(sizes)
        peers = [r for r in results if r.shape is shape]
        base = peers[0].rate(sizes)  # the stdlib loop
        second = peers[1].rate(sizes) if len(shape.references) > 1 else None
        ok = result.status == "ok"
        seconds = min(result.times[sizes[-1]]) if ok else None
        vs_stdlib = rate / base if rate and base else None
        vs_second = rate / second if rate and second else None
        output = {"ok": "yes", "skipped": "skipped"}.get(result.status, "NO")
        rows.append([f"{shape.number}. {shape.title}", result.runner.label, cell(seconds, ".2f"),
                     cell(rate, ",.0f") if ok else result.status, cell(vs_stdlib, ".3f"), cell(vs_second, ".3f"),
                     cell(result.peaks.get(sizes[-1]), ".1f"), output])
        data.append({"shape": shape.number, "title": shape.title, "runtime": result.runner.label,
                     "runner": result.runner.key, "status": result.status, "reason": result.reason,
                     "output_ok": result.status == "ok", "sizes": list(sizes), "events_per_s": rate,
                     "seconds": {str(s): t for s, t in result.times.items()}, "ratio_to_stdlib": vs_stdlib,
                     "ratio_to_second_reference": vs_second,
                     "peak_rss_mib": {str(s): p for s, p in result.peaks.items()}, **result.http})
    print(markdown(rows))
    for result in results:
        if result.http:
            print(f"shape 6, {result.runner.label}: {result.http['requests']:,.0f} requests of events "
                  f"answered 202, {result.http['requests_per_s']:,.0f} requests/s, "
                  f"{result.http['retried_503']:,.0f} answered 503 and sent again")
    if memory:
        print("\npeak RSS, " + " and ".join(f"{s:,}" for s in next(iter(sizes_of.values()))) + " events:\n")
        rows = [["shape", "runtime", "MiB at small", "MiB at large", "growth", f"within {MEMORY_TOLERANCE:.0%}"]]
        for result, entry in zip(results, data):
            small, large = (result.peaks.get(s) for s in sizes_of[result.shape.number])
            growth = large / small - 1 if small and large else None
            entry["memory_flat"] = None if growth is None else abs(growth) <= MEMORY_TOLERANCE
            rows.append([f"{result.shape.number}. {result.shape.title}", result.runner.label, cell(small, ".1f"),
                         cell(large, ".1f"), cell(None if growth is None else growth * 100, "+.1f") + "%",
                         {True: "yes", False: "NO", None: "—"}[entry["memory_flat"]]])
        print(markdown(rows))
    problems = [r for r in results if r.status != "ok"]
    if problems:
        print("\nnot measured:")
        for r in problems:
            print(f"  shape {r.shape.number}, {r.runner.label}: {r.status}: {r.reason}")
    return data


def validate(work: Path, shapes: list[Shape]) -> str:
    """'' when `engine validate` accepts every graph; otherwise its report."""
    if not ENGINE.exists():
        return f"no `engine` next to {sys.executable} (install the repo into this venv)"
    graphs = [str(GRAPHS / s.graph) for s in shapes if s.graph]
    if any(s.number == 1 for s in shapes):
        graphs.append(str(headrace_graph.write_graph(work, 1000, work / "validate.jsonl")))
    done = subprocess.run([str(ENGINE), "validate", *graphs], capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else f"engine validate: {(done.stdout + done.stderr).strip()}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, help=f"N, events per run (default {DEFAULT_COUNT:,})")
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK_COUNT:,}, one run each")
    parser.add_argument("--only", help="comma-separated shape numbers, e.g. 2,3 (default: all)")
    parser.add_argument("--repeat", type=int,
                        help="runs per size, the best counts (default 3; 1 with --quick or --memory)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--memory", action="store_true",
                        help=f"shapes {', '.join(map(str, MEMORY_SHAPES))} at N and {MEMORY_GROWTH} N: is peak RSS "
                             f"within {MEMORY_TOLERANCE * 100:.0f}%% of each other?")
    parser.add_argument("--http-batch", type=int, default=1000, help="events per POST in shape 6 (default 1000)")
    parser.add_argument("--http-concurrency", type=int, default=16, help="requests in flight (default 16)")
    args = parser.parse_args()
    words = [w.strip() for w in args.only.split(",")] if args.only else [str(n) for n in SHAPES]
    if not all(w.isdigit() and int(w) in SHAPES for w in words):
        parser.error(f"--only takes shape numbers from {', '.join(map(str, SHAPES))}, e.g. 2,3")
    chosen = [int(w) for w in words]
    if args.memory:
        chosen = [n for n in chosen if n in MEMORY_SHAPES]
        if not chosen:
            parser.error(f"--memory runs shapes {', '.join(map(str, MEMORY_SHAPES))} only")
    args.shapes = [SHAPES[n] for n in chosen]
    args.count = args.count or (QUICK_COUNT if args.quick else DEFAULT_COUNT)
    args.repeat = args.repeat or (1 if args.quick or args.memory else 3)
    if args.count < 10 or args.repeat < 1:
        parser.error("need --count >= 10 and --repeat >= 1")
    return args


def main() -> int:
    args = arguments()
    count = args.count
    sizes = (count, count * MEMORY_GROWTH) if args.memory else (count // 5, count)
    sizes_of = {s.number: (sizes[-1],) if s.http else sizes for s in args.shapes}
    version = subprocess.run([str(ENGINE), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shapes_bench_") as tmp:
        work = Path(tmp)
        formats = {s.data for s in args.shapes if s.data}
        inputs: dict[int, dict[str, Path]] = {}
        for size in sorted({n for s in args.shapes if s.data for n in sizes_of[s.number]}):
            print(f"  writing {size:,} events as {' and '.join(sorted(formats))}", file=sys.stderr)
            folder = work / f"data_{size}"
            folder.mkdir()
            inputs[size] = {}
            if "jsonl" in formats:
                inputs[size]["jsonl"] = shape_data.write_jsonl(folder / shape_data.JSONL_NAME, size)
            if "csv" in formats:
                inputs[size]["csv"] = shape_data.write_csv(folder / shape_data.CSV_NAME, size)
        # The engine's own log lines stay out of the children's stderr unless they matter.
        ctx = Context(work, inputs, {**os.environ, "HEADRACE_LOG_LEVEL": "warning"}, args.http_batch,
                      args.http_concurrency, Spawner())
        try:
            problem = validate(work, args.shapes)
            for shape in args.shapes:
                results += measure_shape(shape, sizes_of[shape.number], args.repeat, ctx, problem)
        finally:
            ctx.spawner.close()
    print(f"python: {platform.python_implementation()} {platform.python_version()}; engine: {version}; "
          f"orjson: {orjson.__version__ if orjson else 'not installed'}; machine: {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    print(f"N = {sizes[-1]:,} events; events/s = slope between {sizes[0]:,} and {sizes[1]:,} events "
          f"(shape 6: N / client time); best of {args.repeat}\n")
    rows = report(results, sizes_of, args.memory)
    if args.json:
        header = {"python": platform.python_version(), "engine": version, "sizes": list(sizes),
                  "repeat": args.repeat, "memory": args.memory}
        args.json.write_text(json.dumps({**header, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"\nFAILED: {', '.join(f'shape {r.shape.number} {r.runner.label}' for r in failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
