"""Reload latency of `engine serve`: a graph file written -> its new version running.

Serves a directory holding one 100-node graph (generate -> 98 maps -> null) in-process,
rewrites the file atomically many times, and times each write until the new version's
runtime has started (watch, debounce, settled scan, load, build, drain of the old one,
start). Beside it, the floor: loading and building the same graph with no watching at all.
Usage:

    python bench/reload_bench.py            # 20 reloads, debounce 200 ms (the default setting)
    python bench/reload_bench.py 50 50      # 50 reloads, debounce 50 ms
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.cli.registry import default_registry
from adapters.serve.host import APPLIED, Host
from adapters.serve.server import Server
from engine.runtime import Runtime
from loader.api import load_text

NODES = 100


def graph(version: int) -> str:
    lines = ["version: 1", "nodes:", f"  n0: {{type: generate, with: {{rate: 100, fields: {{v: '{version}'}}}}}}"]
    for k in range(1, NODES - 1):
        lines.append(f"  n{k}: {{type: map, from: n{k - 1}, with: {{set: {{f{k}: v}}}}}}")
    lines.append(f"  n{NODES - 1}: {{type: \"null\", from: n{NODES - 2}}}")
    return "\n".join(lines) + "\n"


def floor_ms(repeat: int) -> float:
    registry = default_registry()
    times = []
    for version in range(repeat):
        started = time.perf_counter()
        result = load_text("g.yaml", graph(version), registry)
        assert result.plan is not None
        Runtime(result.plan, registry)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def reload_latencies(folder: Path, repeat: int, debounce_ms: int) -> list[float]:
    path = folder / "g.yaml"
    path.write_text(graph(0))
    host = Host(default_registry(), drain_timeout_s=5.0)
    server = Server(folder, host, debounce_ms, rescan_interval_s=60.0)
    task = asyncio.ensure_future(server.run())
    while "g.yaml" not in host.graphs:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)  # the watch is up
    latencies = []
    for version in range(1, repeat + 1):
        before = host.graphs["g.yaml"]
        temp = folder / ".g.yaml.tmp"
        temp.write_text(graph(version))
        started = time.perf_counter()
        temp.replace(path)
        while host.graphs.get("g.yaml") is before or host.status["g.yaml"].last_result != APPLIED:
            await asyncio.sleep(0.001)
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.1)
    server.request_stop()
    await task
    return latencies


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    debounce_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    with tempfile.TemporaryDirectory() as tmp:
        latencies = asyncio.run(reload_latencies(Path(tmp), repeat, debounce_ms))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(f"{NODES}-node graph, {repeat} reloads, debounce {debounce_ms} ms")
    print(f"{'case':44} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    print(f"{'file written -> new version running (serve)':44} {statistics.median(latencies):>10.1f} "
          f"{p95:>8.1f} {latencies[-1]:>8.1f}")
    print(f"{'floor: load + build, no watching':44} {floor_ms(repeat):>10.1f}")
    if p95 > 300:
        raise SystemExit("reload latency p95 is above the 300 ms target")


if __name__ == "__main__":
    main()
