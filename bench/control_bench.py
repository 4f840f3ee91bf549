"""Control-plane latency: `GetGraph` p50/p99 while a graph runs at full speed.

Starts `engine serve` in its own process on a directory holding one graph that never
waits (generate -> map -> filter -> aggregate, no rate limit), then calls `GetGraph` from
this process many times and reports the latency percentiles. Beside it, the reference:
the same calls against an engine serving the same graph paused (an idle event loop).
Usage:

    python bench/control_bench.py          # 2,000 calls each
    python bench/control_bench.py 500
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc

GRAPH = """version: 1
name: busy
nodes:
  events: {type: generate, with: {fields: {user: i % 1000, amount: float(i % 97)}}}
  priced: {type: map, from: events, with: {set: {cents: int(amount * 100)}}}
  big: {type: filter, from: priced, with: {where: cents > 100}}
  totals: {type: aggregate, from: big, with: {by: user, fields: {total: sum(cents)}}}
  out: {type: "null", from: totals}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure(stub: control_pb2_grpc.ControlStub, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        stub.GetGraph(pb.GetGraphRequest(graph="busy"), timeout=5)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "busy.yaml").write_text(GRAPH)
        env = dict(os.environ, HEADRACE_CONTROL_ADDRESS=f"127.0.0.1:{port}", HEADRACE_LOG_LEVEL="warning")
        engine = subprocess.Popen([str(Path(sys.executable).parent / "engine"), "serve", tmp], env=env)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                stub = control_pb2_grpc.ControlStub(channel)
                while not stub.ListGraphs(pb.ListGraphsRequest()).graphs:
                    time.sleep(0.05)
                time.sleep(0.5)
                before = stub.GetGraph(pb.GetGraphRequest(graph="busy"))
                busy = measure(stub, calls)
                after = stub.GetGraph(pb.GetGraphRequest(graph="busy"))
                moved = {n.name: n.events_out for n in after.nodes}["events"] - \
                    {n.name: n.events_out for n in before.nodes}["events"]
                stub.Pause(pb.PauseRequest(graph="busy"))
                idle = measure(stub, calls)
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=30)
    busy_p50, busy_p99 = percentiles(busy)
    idle_p50, idle_p99 = percentiles(idle)
    print(f"GetGraph, {calls} calls each, engine {'compiled' if 'compiled' in _version() else 'interpreted'}")
    print(f"{'case':42} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'graph running at full speed':42} {busy_p50:>8.2f} {busy_p99:>8.2f}")
    print(f"{'reference: the same graph paused':42} {idle_p50:>8.2f} {idle_p99:>8.2f}")
    print(f"events generated while measuring: {moved:,}")
    if busy_p99 > 5:
        raise SystemExit("GetGraph p99 is above the 5 ms target")


def _version() -> str:
    return subprocess.run([str(Path(sys.executable).parent / "engine"), "--version"], capture_output=True,
                          text=True).stdout


if __name__ == "__main__":
    main()
