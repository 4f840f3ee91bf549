"""What a tap costs the graph it taps: the reference pipeline with a tap open beside it, and
without (docs/control.md: "a tap never slows the graph down"; the target is within 5%).

The reference pipeline is bench/peers/headrace_graph.py's graph (generate -> map -> filter
-> aggregate by user -> file.write), run in this process the way `engine serve` runs a graph
(a `RunningGraph`). A tap is what `engine ctl tap` opens: the control plane's `TapStream` on
one edge, read by a task at a rate (`--rate`, default 10 events a second, the engine's
default) while the graph runs. Rows:

- no tap (the reference);
- a tap on `priced->buys`, a link inside the fused chain: the chain's loop is generated
  again with a call per event on that link while the tap lasts;
- a tap on `per_user->out`, a plain edge (the aggregate's 1,000 totals cross it at the end).

Building the runtime and opening the tap are outside the time, which runs from the graph's
start to its end. Rounds are interleaved; the best of `--repeat` counts. A reported figure,
not a test: tests/test_bench_scripts.py only checks that the script runs and the runs agree.
Usage:

    .venv/bin/python bench/tap_bench.py                           # 1M events, best of 5
    .venv/bin/python bench/tap_bench.py --count 20000 --repeat 1
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.cli.registry import default_registry
from adapters.control.taps import TapStream
from adapters.serve.running import RunningGraph
from bench.peers.headrace_graph import GRAPH
from engine import buildinfo
from engine.runtime import Runtime
from loader.api import load_text

TARGET = 0.05  # at most this much slower with a tap open
ROWS = {"no tap (reference)": "", "tap on priced->buys (inside the fused chain)": "priced->buys",
        "tap on per_user->out (a plain edge)": "per_user->out"}


class Run:
    """One run of the graph: seconds, the totals it wrote, the events the tap sampled."""

    def __init__(self, seconds: float, totals: dict[str, object], sampled: int) -> None:
        self.seconds = seconds
        self.totals = totals
        self.sampled = sampled


def one_run(folder: Path, count: int, edge: str, rate: float) -> Run:
    out = folder / "totals.jsonl"
    out.unlink(missing_ok=True)
    registry = default_registry()
    loaded = load_text("peers_bench.yaml", GRAPH.format(count=count, path=json.dumps(str(out))), registry)
    assert loaded.plan is not None, [p.message for p in loaded.problems]
    running = RunningGraph("peers_bench.yaml", loaded.plan, Runtime(loaded.plan, registry))
    sampled = 0

    async def read_the_tap(stream: TapStream) -> None:
        nonlocal sampled
        async for _ in stream.events(lambda: True):  # until the graph has finished
            sampled += 1

    async def main() -> float:
        stream = TapStream(running, edge, rate) if edge else None
        started = time.perf_counter()
        running.start()
        reader = asyncio.ensure_future(read_the_tap(stream)) if stream is not None else None
        assert running.task is not None
        if not await running.task:
            raise SystemExit(f"the graph failed: {running.runtime.failure}")
        seconds = time.perf_counter() - started
        if reader is not None and stream is not None:
            await reader
            stream.close()
        return seconds

    seconds = asyncio.run(main())
    totals = {str(row["user"]): row["total"] for row in map(json.loads, out.read_text().splitlines())}
    return Run(seconds, totals, sampled)


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for index, row in enumerate([header] + rows):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="events per run (default 1M)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts (default 5)")
    parser.add_argument("--rate", type=float, default=10.0, help="tapped events a second (default 10)")
    args = parser.parse_args()
    best = {name: float("inf") for name in ROWS}
    sampled = dict.fromkeys(ROWS, 0)
    totals: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            for name, edge in ROWS.items():
                run = one_run(Path(folder), args.count, edge, args.rate)
                best[name] = min(best[name], run.seconds)
                sampled[name] = max(sampled[name], run.sampled)
                totals[name] = run.totals
    reference = best["no tap (reference)"]
    agree = all(t == totals["no tap (reference)"] for t in totals.values())
    print(f"Python {sys.version.split()[0]}, engine {buildinfo.mode()}; reference pipeline, {args.count:,} events, "
          f"tap rate {args.rate:g}/s; best of {args.repeat}; totals {'OK' if agree else 'DIFFER'}\n")
    table(["run", "events/s", "slower than no tap", f"within {TARGET:.0%}", "events tapped"],
          [[name, f"{args.count / best[name]:,.0f}", f"{best[name] / reference - 1:+.1%}",
            "yes" if best[name] <= reference * (1 + TARGET) else "no", f"{sampled[name]:,}" if ROWS[name] else "-"]
           for name in ROWS])
    if not agree:
        raise SystemExit("the runs disagree on the totals")


if __name__ == "__main__":
    main()
