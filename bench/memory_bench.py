"""Peak memory of `engine run` must not grow with the number of events.

Runs the same graph (generate -> map -> filter -> aggregate by 1,000 users -> null) over
growing event counts, each in a fresh process, and reads that process's peak RSS from
`wait4`. A hand-written Python loop computing the same totals runs beside it as the
reference. Usage:

    python bench/memory_bench.py                 # 100k, 1M, 10M events
    python bench/memory_bench.py 10000 100000    # chosen counts
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRAPH = """
version: 1
nodes:
  orders:
    type: generate
    with:
      count: {count}
      fields: {{user: i % 1000, amount: float(i % 97), kind: "'buy' if i % 3 else 'sell'"}}
  priced: {{type: map, from: orders, with: {{set: {{amount_cents: "int(amount * 100)"}}}}}}
  buys: {{type: filter, from: priced, with: {{where: "kind == 'buy'"}}}}
  per_user:
    type: aggregate
    from: buys
    with: {{by: user, fields: {{total: sum(amount_cents)}}}}
  out: {{type: "null", from: per_user}}
"""

REFERENCE = """
import sys
totals = {}
for i in range(int(sys.argv[1])):
    event = {"user": i % 1000, "amount": float(i % 97), "kind": "buy" if i % 3 else "sell"}
    event = dict(event, amount_cents=int(event["amount"] * 100))
    if event["kind"] == "buy":
        totals[event["user"]] = totals.get(event["user"], 0) + event["amount_cents"]
"""


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    # Linux reports KiB, macOS bytes.
    peak = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 1024 / 1024
    return elapsed, peak


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000, 10_000_000]
    engine = [sys.executable, "-m", "adapters.cli.main", "run"]
    print(f"{'events':>12} {'engine s':>9} {'engine MiB':>11} {'reference s':>12} {'reference MiB':>14}")
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            graph = Path(tmp) / f"memory_{count}.yaml"
            graph.write_text(GRAPH.format(count=count))
            engine_s, engine_mib = measure(engine + [str(graph)])
            ref_s, ref_mib = measure([sys.executable, "-c", REFERENCE, str(count)])
            peaks.append(engine_mib)
            print(f"{count:>12,} {engine_s:>9.2f} {engine_mib:>11.1f} {ref_s:>12.2f} {ref_mib:>14.1f}")
    growth = peaks[-1] - peaks[0]
    print(f"peak RSS growth from {counts[0]:,} to {counts[-1]:,} events: {growth:+.1f} MiB")
    if growth > 20:
        raise SystemExit("peak memory grows with the event count")


if __name__ == "__main__":
    main()
