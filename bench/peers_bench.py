"""Headrace side by side with peer runtimes and a hand-written loop, on one pipeline.

1,000,000 generated events -> add `amount_cents` -> keep `kind == "buy"` -> sum
`amount_cents` per user -> write the 1,000 totals. Each runtime runs in a fresh process at
two sizes, timed whole from here (start-up included, as a user sees `engine run`); the
rate is the slope between the two sizes, so start-up cancels out. Every run's totals are
checked against the plain loop's; a mismatch or a crash makes the exit status 1.

    .venv/bin/python bench/peers_bench.py                      # 200k and 1M events, best of 3
    .venv/bin/python bench/peers_bench.py --quick --repeat 1
    .venv/bin/python bench/peers_bench.py --only headrace,plain --json results.json
    .venv/bin/python bench/peers_bench.py --setup              # install the peers, then exit

Peers are installed, pinned, into a separate venv (default `bench/.peers-venv`) on first
use; a peer that cannot be installed is reported as skipped, with the reason.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers import _venv, headrace_graph, run_plain

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
ENGINE = Path(sys.executable).parent / "engine"  # the console script of this environment
QUICK_SIZES = (20_000, 100_000)


@dataclass(frozen=True)
class Variant:
    key: str  # what --only names; one table row per key (the fastest variant)
    label: str
    script: str | None  # in bench/peers/; None for Headrace, which runs `engine run`
    args: tuple[str, ...] = ()
    config: str = ""


VARIANTS = (
    Variant("plain", "plain Python loop", "run_plain.py", config="one function; dict events; running sums in a dict"),
    Variant("headrace", "Headrace (engine run)", None,
            config="generate -> map -> filter -> aggregate -> file.write (jsonl); block edges, capacity 1024"),
    Variant("bytewax", "bytewax 0.21.1 (batch 1)", "run_bytewax.py", ("--batch-size", "1"),
            config="TestingSource batch 1 -> map -> filter -> key_on -> map_value -> reduce_final; run_main, 1 worker"),
    Variant("bytewax", "bytewax 0.21.1 (batch 1024)", "run_bytewax.py", ("--batch-size", "1024"),
            config="TestingSource batch 1024, otherwise the same"),
    Variant("reactivex", "reactivex 6.1.0", "run_reactivex.py",
            config="from_iterable -> map -> filter -> group_by -> flat_map(sum) -> to_dict; CurrentThreadScheduler"),
    Variant("streamz", "streamz 0.6.6", "run_streamz.py",
            config="Stream().map.filter.accumulate(dict of sums); emit() from a loop"),
    Variant("meridian", "meridian-runtime 1.2.0", "run_meridian.py",
            config="Block edges, capacity 1024, nodes added sink first, tick 1 ms, idle sleep 0, "
                   "source emits until backpressure, sink stops the scheduler at end of stream"),
)
KEYS = tuple(dict.fromkeys(v.key for v in VARIANTS))


@dataclass
class Result:
    variant: Variant
    times: dict[int, list[float]] = field(default_factory=dict)  # size -> seconds per repeat
    peak_mib: float = 0.0  # the largest peak RSS seen at the larger size
    totals_ok: bool = True
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""

    def best(self, size: int) -> float:
        return min(self.times[size])

    def rate(self, sizes: tuple[int, int]) -> float | None:
        """Events/s from the slope; None when noise made the larger size no slower."""
        small, large = sizes
        if self.status != "ok" or self.best(large) <= self.best(small):
            return None
        return (large - small) / (self.best(large) - self.best(small))

    def startup(self, sizes: tuple[int, int]) -> float | None:
        """The fixed cost the slope leaves out: time at 0 events on the line."""
        rate = self.rate(sizes)
        return None if rate is None else self.best(sizes[0]) - sizes[0] / rate


def run_child(command: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit code, end of stderr) of one fresh process."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it, not Popen
        err.seek(0)
        tail = err.read().decode(errors="replace").strip()[-1500:]
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return elapsed, peak, child.returncode, tail


def command_for(variant: Variant, size: int, totals: Path, work: Path, peer_python: Path) -> list[str]:
    if variant.script is None:  # Headrace: the graph file, run as a user runs it
        jsonl = totals.with_suffix(".jsonl")
        return [str(ENGINE), "run", str(headrace_graph.write_graph(work, size, jsonl))]
    python = sys.executable if variant.key == "plain" else str(peer_python)
    return [python, str(PEERS / variant.script), str(size), str(totals), *variant.args]


def read_totals(variant: Variant, totals: Path) -> dict[str, object] | None:
    try:
        if variant.script is None:  # Headrace wrote JSON Lines; convert them here, untimed
            headrace_graph.totals_from_jsonl(totals.with_suffix(".jsonl"), totals)
        loaded: dict[str, object] = json.loads(totals.read_text(encoding="utf-8"))
        return loaded
    except (OSError, ValueError):
        return None


def measure(variant: Variant, sizes: tuple[int, int], repeat: int, expected: dict[int, dict[str, int]],
            work: Path, peer_python: Path) -> Result:
    result = Result(variant, {size: [] for size in sizes})
    slug = f"{variant.key}{VARIANTS.index(variant)}"
    # Sizes alternate within each repeat, so drift in machine load hits both alike.
    for attempt in range(repeat):
        for size in sizes:
            totals = work / f"{slug}_{size}_{attempt}.json"
            command = command_for(variant, size, totals, work, peer_python)
            print(f"  {variant.label}: {size:,} events, run {attempt + 1}/{repeat}", file=sys.stderr)
            elapsed, peak, code, stderr = run_child(command, work)
            if code != 0:
                result.status, result.reason = "failed", f"exit {code} at {size:,} events: {stderr}"
                return result
            got = read_totals(variant, totals)
            if got != expected[size]:
                result.totals_ok = False
                result.status, result.reason = "failed", f"totals differ from the plain loop at {size:,} events"
                return result
            result.times[size].append(elapsed)
            if size == sizes[1]:
                result.peak_mib = max(result.peak_mib, peak)
    return result


def engine_version() -> tuple[str, str]:
    """(`engine --version` line, 'compiled' | 'interpreted' | 'unknown')."""
    if not ENGINE.exists():
        return f"no engine at {ENGINE}", "unknown"
    line = subprocess.run([str(ENGINE), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    mode = next((m for m in ("compiled", "interpreted") if f"({m}" in line), "unknown")
    return line, mode


def check_headrace(work: Path) -> str:
    """Why Headrace cannot run, or '' when `engine validate` accepts the graph."""
    if not ENGINE.exists():
        return f"no `engine` next to {sys.executable} (install the repo into this venv)"
    graph = headrace_graph.write_graph(work, 1000, work / "validate.jsonl")
    done = subprocess.run([str(ENGINE), "validate", str(graph)], capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else f"engine validate failed: {(done.stdout + done.stderr).strip()}"


def fmt_rate(rate: float | None) -> str:
    return "noise" if rate is None else f"{rate:,.0f}"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def quoted(results: list[Result], sizes: tuple[int, int]) -> list[Result]:
    """One result per runtime key: its fastest variant (bytewax has two batch sizes)."""
    chosen: dict[str, Result] = {}
    for result in results:
        old = chosen.get(result.variant.key)
        if old is None or (result.rate(sizes) or 0.0) > (old.rate(sizes) or 0.0):
            chosen[result.variant.key] = result
    return list(chosen.values())


def report(results: list[Result], sizes: tuple[int, int], repeat: int, header: dict[str, str]) -> dict[str, object]:
    for name, value in header.items():
        print(f"{name}: {value}")
    print(f"events: {sizes[0]:,} and {sizes[1]:,}; best of {repeat}; events/s = slope between the two sizes\n")
    plain = next((r.rate(sizes) for r in results if r.variant.key == "plain" and r.status == "ok"), None)
    rows = [["runtime", "events/s", "ratio to plain loop", "peak RSS MiB", "totals OK"]]
    for r in quoted(results, sizes):
        rate = r.rate(sizes)
        ok = r.status == "ok"
        ratio = f"{rate / plain:.3f}" if ok and rate and plain else "—"
        rows.append([r.variant.label, fmt_rate(rate) if ok else r.status, ratio,
                     f"{r.peak_mib:.1f}" if ok else "—", "yes" if ok else ("—" if r.status == "skipped" else "NO")])
    print(table(rows))
    detail = [["runtime", f"best s at {sizes[0]:,}", f"best s at {sizes[1]:,}", "start-up s (intercept)", "events/s"]]
    for r in results:
        if r.status == "ok":
            startup = r.startup(sizes)
            detail.append([r.variant.label, f"{r.best(sizes[0]):.3f}", f"{r.best(sizes[1]):.3f}",
                           "—" if startup is None else f"{startup:.3f}", fmt_rate(r.rate(sizes))])
    if len(detail) > 1:
        print("\nall variants measured:\n" + table(detail))
        # The intercept is a straight-line fit through two points, not a measurement.
        print("(start-up = time at 0 events on the line through both sizes; below 0 when the "
              "per-event cost grows with the count)")
    print("\nconfigurations:")
    for r in results:
        print(f"  {r.variant.label}: {r.variant.config}")
    problems = [r for r in results if r.status != "ok"]
    if problems:
        print("\nnot measured:")
        for r in problems:
            print(f"  {r.variant.label}: {r.status}: {r.reason}")
    return {
        **header,
        "sizes": list(sizes),
        "repeat": repeat,
        "runtimes": [
            {
                "key": r.variant.key,
                "label": r.variant.label,
                "config": r.variant.config,
                "quoted": r in quoted(results, sizes),
                "status": r.status,
                "reason": r.reason,
                "events_per_s": r.rate(sizes) if r.status == "ok" else None,
                "ratio_to_plain": (r.rate(sizes) or 0.0) / plain if r.status == "ok" and plain else None,
                "startup_s": r.startup(sizes) if r.status == "ok" else None,
                "peak_rss_mib": r.peak_mib if r.status == "ok" else None,
                "totals_ok": r.status == "ok",
                "seconds": {str(size): times for size, times in r.times.items()},
            }
            for r in results
        ],
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        help="event counts (default 200000 1000000)")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES[0]} and {QUICK_SIZES[1]}")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best counts (default 3)")
    parser.add_argument("--only", help=f"comma-separated runtimes: {','.join(KEYS)}")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--peers-venv", type=Path, default=BENCH / ".peers-venv", help="venv for the peers")
    parser.add_argument("--setup", action="store_true", help="install the pinned peers into --peers-venv and exit")
    args = parser.parse_args()
    keys = [k.strip() for k in args.only.split(",")] if args.only else list(KEYS)
    unknown = sorted(set(keys) - set(KEYS))
    if unknown:
        parser.error(f"unknown runtime {', '.join(unknown)}; choose from {', '.join(KEYS)}")
    args.keys = keys
    args.sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else (200_000, 1_000_000))
    if not 0 < args.sizes[0] < args.sizes[1] or args.repeat < 1:
        parser.error("need 0 < SMALL < LARGE and --repeat >= 1")
    return args


def main() -> int:
    args = arguments()
    peers = [k for k in args.keys if k in _venv.PINS]
    if args.setup:
        skipped = _venv.ensure(args.peers_venv, list(_venv.PINS))
        for key, reason in skipped.items():
            print(f"{key}: {reason}")
        print(f"peers in {args.peers_venv}: {len(_venv.PINS) - len(skipped)} of {len(_venv.PINS)} installed")
        return 1 if skipped else 0
    skipped = _venv.ensure(args.peers_venv, peers)
    sizes: tuple[int, int] = args.sizes
    # The expected totals, from the plain loop's own function, computed here once per size.
    expected = {size: {str(u): t for u, t in run_plain.totals(size).items()} for size in sizes}
    version, mode = engine_version()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="peers_bench_") as tmp:
        work = Path(tmp)
        for variant in (v for v in VARIANTS if v.key in args.keys):
            reason = skipped.get(variant.key) or (check_headrace(work) if variant.key == "headrace" else "")
            if reason:
                status = "failed" if variant.key == "headrace" else "skipped"
                results.append(Result(variant, status=status, reason=reason, totals_ok=False))
                continue
            results.append(measure(variant, sizes, args.repeat, expected, work, _venv.python_of(args.peers_venv)))
    header = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "engine": version,
        "engine mode": mode,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
    }
    data = report(results, sizes, args.repeat, header)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"\nFAILED: {', '.join(r.variant.label for r in failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
