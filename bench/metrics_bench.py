"""What the Prometheus endpoint costs the graph it reports on: the reference pipeline with
`/metrics` served and scraped every second, beside the same run without metrics (the
target is within 3%; measured figures in docs/performance.md, the endpoint in
docs/observability.md).

The reference pipeline is bench/peers/headrace_graph.py's graph (generate -> map -> filter
-> aggregate by user -> file.write), run in this process the way `engine run FILE
--metrics-address HOST:PORT` runs it (adapters/cli/run_graph.py): the endpoint is bound and
started before the graph starts, served on the engine's event loop, and each scrape takes its snapshot
on the engine's event loop, between batches. A scraper process plays Prometheus: it GETs
`/metrics` every `--interval` seconds (default 1) while the graph runs, and reports how long
each scrape took. Rows:

- no metrics (the reference): the graph alone;
- metrics endpoint, scraped every second.

Building the runtime and binding the endpoint are outside the time, which runs from the
graph's start to its end. The two rows alternate within each round (and swap places every
round), after one untimed warm-up run of each; the median of `--repeat` rounds counts, the
best is shown beside it. After each run with metrics, one more scrape (untimed) must agree
with the runtime's own stats. A reported figure, not a test: tests/test_bench_scripts.py
only checks that the script runs and the runs agree. Usage:

    .venv/bin/python bench/metrics_bench.py                # 20M events per run, 7 rounds
    .venv/bin/python bench/metrics_bench.py --quick        # a smoke run: seconds
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from adapters.cli.registry import default_registry
from adapters.observe.endpoint import MetricsEndpoint
from adapters.observe.metrics import metrics_registry
from adapters.observe.snapshot import graph_view, stamped
from bench.peers.headrace_graph import GRAPH
from engine import buildinfo
from engine.runtime import Runtime
from loader.api import load_text

TARGET = 0.03  # at most this much slower with metrics served and scraped
REFERENCE = "no metrics (reference)"
SCRAPED = "metrics endpoint, scraped every {interval:g} s"
FILE = "metrics_bench.yaml"


# Prometheus, roughly, in a process of its own (as Prometheus is: its work must not compete
# for this process's GIL): GET /metrics every `interval` seconds until its standard input
# closes, one line per scrape: seconds from request to last byte, ok or bad (not a 200
# with the graph's series), after a first line `ready`. A scrape in flight when the input
# closes is finished first.
SCRAPER = """
import select, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
while not select.select([sys.stdin], [], [], interval)[0]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        good = response.status == 200 and b'graph="peers_bench"' in response.read()
    print(f"{time.perf_counter() - started:.6f} {'ok' if good else 'bad'}", flush=True)
"""


class Scraper:
    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.process = subprocess.Popen([sys.executable, "-c", SCRAPER, url, str(interval)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.process.stdout.readline()  # started: its start-up is not the graph's time

    def stop(self) -> list[float]:
        """The latency of each scrape; blocks until the one in flight has been answered."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        lines = self.process.stdout.read().split()
        if self.process.wait() != 0 or "bad" in lines[1::2]:
            raise SystemExit(f"a scrape failed (the scraper's lines: {lines})")
        return [float(seconds) for seconds in lines[0::2]]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


class Run:
    """One run of the graph: seconds, the totals it wrote, and its scrapes (latencies)."""

    def __init__(self, seconds: float, totals: dict[str, object], scrapes: list[float]) -> None:
        self.seconds = seconds
        self.totals = totals
        self.scrapes = scrapes


def events_in(text: str) -> dict[str, float]:
    """headrace_node_events_in_total per node, from a scrape's text."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "headrace_node_events_in_total":
                found[sample.labels["node"]] = sample.value
    return found


def one_run(folder: Path, count: int, interval: float | None) -> Run:
    """One run; `interval` None: no endpoint at all, else the endpoint scraped that often."""
    out = folder / "totals.jsonl"
    out.unlink(missing_ok=True)
    registry = default_registry()
    loaded = load_text(FILE, GRAPH.format(count=count, path=json.dumps(str(out))), registry)
    assert loaded.plan is not None, [p.message for p in loaded.problems]
    runtime = Runtime(loaded.plan, registry)
    scrapes: list[float] = []

    def state() -> str:  # as adapters/cli/run_graph.py:_metrics reports a graph of `engine run`
        return "failed" if runtime.failure else "running" if runtime.running else "finished"

    async def main() -> float:
        endpoint = scraper = None
        if interval is not None:
            take = lambda: stamped([graph_view(runtime.plan.name, FILE, state(), runtime)])  # noqa: E731
            endpoint = MetricsEndpoint("127.0.0.1:0", metrics_registry(take))  # loopback: no token needed
            await endpoint.start()
            scraper = Scraper(f"http://127.0.0.1:{endpoint.port}/metrics", interval)
        started = time.perf_counter()
        ok = await runtime.run()
        seconds = time.perf_counter() - started
        if not ok:
            raise SystemExit(f"the graph failed: {runtime.failure}")
        if endpoint is not None and scraper is not None:
            scrapes.extend(await asyncio.to_thread(scraper.stop))  # one in flight needs this loop to answer
            # One more scrape, untimed: the endpoint reports what the runtime counted.
            final = await asyncio.to_thread(scrape, scraper.url)
            nodes = runtime.stats()["nodes"]
            assert isinstance(nodes, dict)
            if events_in(final) != {name: float(node["in"]) for name, node in nodes.items()}:
                raise SystemExit("the last scrape disagrees with the runtime's stats")
            await endpoint.stop()
        return seconds

    seconds = asyncio.run(main())
    totals = {str(row["user"]): row["total"] for row in map(json.loads, out.read_text().splitlines())}
    return Run(seconds, totals, scrapes)


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for index, row in enumerate([header] + rows):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000_000, help="events per run (default 20M)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the median counts (default 7)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200,000 events, 1 round, a scrape every 10 ms")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeat, args.interval = 200_000, 1, 0.01
    scraped = SCRAPED.format(interval=args.interval)
    rows: dict[str, float | None] = {REFERENCE: None, scraped: args.interval}
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    scrapes: list[float] = []  # latency of every scrape that fell inside a run
    answered: list[int] = []  # scrapes per run with metrics
    due: list[int] = []  # scrapes a run would have had, one per interval
    first: dict[str, object] | None = None  # every run must write these totals
    agree = True
    with tempfile.TemporaryDirectory() as folder:
        for interval in rows.values():  # warm-up, untimed: imports, the fused chain's code
            one_run(Path(folder), min(args.count, 100_000), interval)
        for round_number in range(args.repeat):
            order = list(rows.items()) if round_number % 2 == 0 else list(reversed(rows.items()))
            for name, interval in order:
                run = one_run(Path(folder), args.count, interval)
                seconds[name].append(run.seconds)
                first = run.totals if first is None else first
                agree = agree and run.totals == first
                if interval is not None:
                    scrapes.extend(run.scrapes)
                    answered.append(len(run.scrapes))
                    due.append(int(run.seconds / interval))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    best = {name: min(values) for name, values in seconds.items()}
    print(f"Python {sys.version.split()[0]}, engine {buildinfo.mode()}; reference pipeline, {args.count:,} events "
          f"per run; metrics scraped every {args.interval:g} s; median of {args.repeat} alternating rounds; "
          f"totals {'OK' if agree else 'DIFFER'}\n")
    table(["run", "events/s (median)", "events/s (best)", "slower than no metrics", f"within {TARGET:.0%}",
           "scrapes per run (due)"],
          [[name, f"{args.count / median[name]:,.0f}", f"{args.count / best[name]:,.0f}",
            f"{median[name] / median[REFERENCE] - 1:+.1%}",
            "yes" if median[name] <= median[REFERENCE] * (1 + TARGET) else "no",
            f"{statistics.median(answered):g} ({statistics.median(due):g})" if interval is not None else "-"]
           for name, interval in rows.items()])
    if scrapes:
        ordered = sorted(scrapes)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"\n{len(scrapes)} scrapes started while the graph ran: median "
              f"{statistics.median(scrapes) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, max {ordered[-1] * 1000:.2f} ms "
              "(request to last byte)")
    else:
        print("\nno scrape fell inside a run: use more events or a shorter --interval")
    if not agree:
        raise SystemExit("the runs disagree on the totals")


if __name__ == "__main__":
    main()
