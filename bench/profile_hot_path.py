"""Where the time of the reference pipeline goes: cProfile of the runtime, unfused and fused.

Loads the same graph as `peers_bench.py` (generate -> map -> filter -> aggregate by user)
in-process, then runs it twice under cProfile: once with every node on its own
(`fuse=False`, how the engine ran before fused chains) and once as the engine runs it now.
Start-up (imports, loading, compiling expressions) is outside the profile. Usage:

    python bench/profile_hot_path.py            # 1,000,000 events, top 12 entries
    python bench/profile_hot_path.py 200000 20
"""

import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.cli.registry import default_registry
from bench.peers.headrace_graph import write_graph
from engine.buildinfo import mode
from engine.runtime import Runtime
from loader.api import load_file


def profile(graph: Path, fuse: bool, top: int) -> None:
    registry = default_registry()
    result = load_file(graph, registry)
    assert result.plan is not None, [p.message for p in result.problems]
    runtime = Runtime(result.plan, registry, fuse=fuse)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    ok = asyncio.run(runtime.run())
    profiler.disable()
    elapsed = time.perf_counter() - started
    if not ok:
        raise SystemExit(runtime.failure)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    label = "fused (as the engine runs)" if fuse else "unfused (every node on its own)"
    print(f"== {label}: {elapsed:.2f} s under the profiler ==")
    # Keep the table, drop pstats' preamble.
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(lines[start:start + top + 1]))
    print()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    print(f"reference pipeline, {count:,} events, {mode()} engine, Python {sys.version.split()[0]}\n")
    with tempfile.TemporaryDirectory() as tmp:
        graph = write_graph(Path(tmp), count, Path(tmp) / "totals.jsonl")
        profile(graph, False, top)
        profile(graph, True, top)


if __name__ == "__main__":
    main()
