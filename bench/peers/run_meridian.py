"""meridian-runtime 1.2.0: source -> MapTransformer -> FilterTransformer -> totals sink.

Its best honest configuration, each choice forced by how 1.2.0 works:

- Every edge is `Block()` with capacity 1024. `connect()` without a policy uses `Latest`,
  which replaces the newest queued message when the edge is full: events silently lost.
- Nodes are added sink first. The scheduler runs the first ready node in the order nodes
  were added, so downstream nodes drain before their producer runs again; a transformer
  therefore never emits into a full edge (which would lose the message it already took).
- A source only runs on a scheduler tick, so one message per tick (the built-in
  DataProducer) caps throughput at 1 / tick interval. This source emits until its edge
  refuses (backpressure), keeps the refused event for its next tick, and the tick
  interval is the smallest (1 ms): capacity / interval = 1M events/s, far above what the
  rest of the graph reaches.
- The idle timeout counts from the start of the run, not from the last work, so it is
  raised out of the way; the sink stops the scheduler when the end-of-stream CONTROL
  message (forwarded by both transformers) arrives. No idle sleep: the loop never naps.
- Logging at WARN (the default INFO writes start/stop lines to stderr); metrics and
  tracing are off by default.
"""

from collections.abc import Callable, Iterator
from typing import Any

from _common import add_cents, arguments, events, is_buy, write_totals
from meridian import (
    FilterTransformer,
    MapTransformer,
    Message,
    MessageType,
    Node,
    Port,
    PortDirection,
    Scheduler,
    SchedulerConfig,
    Subgraph,
)
from meridian.core.policies import Block
from meridian.observability.config import ObservabilityConfig, configure_observability
from meridian.observability.logging import LogLevel

CAPACITY = 1024


class EventSource(Node):
    """Emits events until the downstream edge pushes back, then one end-of-stream."""

    def __init__(self, name: str, items: Iterator[dict[str, Any]]) -> None:
        super().__init__(name=name, outputs=[Port("output", PortDirection.OUTPUT)])
        self._items = items
        self._pending: Message | None = None  # refused by a full edge; sent first next tick
        self._done = False

    def _handle_tick(self) -> None:
        while not self._done:
            message = self._pending or self._next()
            try:
                self.emit("output", message)
            except RuntimeError:  # backpressure: the edge is full and kept nothing
                self._pending = message
                return
            self._pending = None
            if message.type == MessageType.CONTROL:
                self._done = True

    def _next(self) -> Message:
        item = next(self._items, None)
        if item is None:
            return Message(MessageType.CONTROL, "end")
        return Message(MessageType.DATA, item)


class TotalsSink(Node):
    """Sums `amount_cents` per user; at end of stream calls `on_end` with the totals."""

    def __init__(self, name: str, on_end: Callable[[dict[int, int]], None]) -> None:
        super().__init__(name=name, inputs=[Port("input", PortDirection.INPUT)])
        self.totals: dict[int, int] = {}
        self._on_end = on_end

    def _handle_message(self, port: str, msg: Message) -> None:
        if msg.type == MessageType.DATA:
            event = msg.payload
            user = event["user"]
            self.totals[user] = self.totals.get(user, 0) + event["amount_cents"]
        elif msg.type == MessageType.CONTROL:
            self._on_end(self.totals)


def main() -> None:
    count, path = arguments()
    configure_observability(ObservabilityConfig(log_level=LogLevel.WARN))
    scheduler = Scheduler(SchedulerConfig(tick_interval_ms=1, idle_sleep_ms=0, shutdown_timeout_s=3600.0))

    def finish(totals: dict[int, int]) -> None:
        write_totals(path, totals)
        scheduler.shutdown()

    graph = Subgraph("peers_bench")
    # Sink first: see the module docstring.
    graph.add_node(TotalsSink("per_user", finish))
    graph.add_node(FilterTransformer("buys", is_buy))
    graph.add_node(MapTransformer("priced", add_cents))
    graph.add_node(EventSource("events", events(count)))
    graph.connect(("events", "output"), ("priced", "input"), capacity=CAPACITY, policy=Block())
    graph.connect(("priced", "output"), ("buys", "input"), capacity=CAPACITY, policy=Block())
    graph.connect(("buys", "output"), ("per_user", "input"), capacity=CAPACITY, policy=Block())
    scheduler.register(graph)
    scheduler.run()


if __name__ == "__main__":
    main()
