"""The runtime node kinds: the small, closed set every node type is built from.

Events are JSON-like dicts. A node never mutates an event it received: it builds a new
dict for anything it changes. That rule is what lets fan-out hand the same event object to
every consumer at no cost while no consumer can see another's changes.

Three kinds meet the scheduler:

- `Transform`: synchronous and CPU-bound; gets a batch, appends results to per-port output
  lists. Sinks that need no IO (`null`) are transforms with no output ports.
- `Source`: synchronous poll ("the next batch if you have one, and when to ask again").
- `AsyncSource` / `AsyncSink`: IO on asyncio; they meet the core through edges and never
  block the scheduler.

The base classes allow interpreted subclasses: adapters and tests subclass them while
`engine/` itself runs compiled.
"""

import random
import time
from typing import Final

from mypy_extensions import mypyc_attr

from engine.plan import ErrorPolicy
from engine.secrets import mask_known

Event = dict[str, object]
Batch = list[Event]

INFINITY: Final = float("inf")


@mypyc_attr(allow_interpreted_subclasses=True)
class Clock:
    """Wall-clock time in epoch seconds; tests pass a manual clock instead."""

    def now(self) -> float:
        return time.time()

    def skip(self, seconds: float) -> bool:
        """Move time on by `seconds` instead of waiting for it; False: this clock cannot
        (real time passes by itself)."""
        return False


@mypyc_attr(allow_interpreted_subclasses=True)
class ManualClock(Clock):
    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@mypyc_attr(allow_interpreted_subclasses=True)
class VirtualClock(ManualClock):
    """Time that jumps to the next timer whenever the graph would wait for it (`engine
    test`): a one-minute window closes at once, and no test sleeps. Only for graphs whose
    every node runs on the scheduler's loop (no IO task could be waited for instead)."""

    def skip(self, seconds: float) -> bool:
        self.t += seconds
        return True


class NodeContext:
    """What a factory gets to build a runtime node from its plan."""

    def __init__(
        self,
        name: str,
        type_name: str,
        params: object,
        ports: tuple[str, ...],
        on_error: ErrorPolicy,
        clock: Clock,
        graph: str = "",
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.graph = graph  # the graph's name: log lines of `engine serve` say which graph
        # The node's secret parameter values (engine/secrets.py `secret_texts`): `mask`
        # takes them out of its failure messages, log lines and stats.
        self.secrets = secrets
        self.type_name = type_name
        # The type's frozen parameter class, as its spec's `parse` built it from `with:`.
        self.params = params
        self.ports = ports  # output ports, in plan order; `outs[i]` belongs to `ports[i]`
        self.on_error = on_error
        self.clock = clock
        # What `rand()` draws from; a type with a `seed` parameter seeds it (generate).
        self.rng = random.Random()
        # Per input edge, in the order `Transform.process_from` numbers them, its upstream as
        # `from:` writes it (`node`, or `node.port` for another port). Set by the runner.
        self.inputs: tuple[str, ...] = ()

    def port_index(self, port: str) -> int:
        return self.ports.index(port) if port in self.ports else -1

    def mask(self, text: str) -> str:
        """`text` as it may be shown: no secret parameter value, no URL or DSN password."""
        return mask_known(text, self.secrets)


class EventError(Exception):
    """One event could not be handled; `on_error` decides what happens next.

    `message` is already user-facing and never contains the payload.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NodeFailure(Exception):
    """A node cannot go on (missing input file, unwritable output): the graph stops.

    The message is one line naming the node and the place, e.g.
    `node 'orders' (file.read): cannot open data/orders.csv: No such file or directory`.
    """


@mypyc_attr(allow_interpreted_subclasses=True)
class Failures:
    """How a node reports a failed event: the runtime implements it per `on_error`."""

    def event_failed(self, event: Event, message: str, outs: list[Batch]) -> bool:
        """Handle one failed event. True: go on with the next event. False: stop
        consuming now; the same event is offered again after the retry backoff."""
        raise NotImplementedError

    def events_failed(self, events: Batch, message: str, outs: list[Batch]) -> None:
        """Events a sink gave up on after its own retries: drop (logged once), dead-letter
        each, or stop the graph. A retry here is the policy's `then`."""
        raise NotImplementedError


@mypyc_attr(allow_interpreted_subclasses=True)
class Transform:
    """A synchronous node: gets batches, appends results to `outs[port_index]`."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        """Handle `batch`; return how many events were consumed (all of them unless a
        failure asked for a retry, in which case the rest is offered again later)."""
        raise NotImplementedError

    def reads_inputs_apart(self) -> bool:
        """True: every batch comes from one input edge, and `process_from` is told which (a
        join tells its sides apart). False: batches may mix the inputs."""
        return False

    def process_from(self, input_index: int, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        """`process` for a batch taken from input number `input_index` (`ctx.inputs` names
        it; always 0 unless the node `reads_inputs_apart`)."""
        return self.process(batch, outs, failures)

    def counters(self) -> dict[str, int]:
        """The node's own counters beside in, out and errors (a throttle's `dropped`), for
        the stats, `engine ctl status` and `/metrics`."""
        return {}

    def flush(self, outs: list[Batch]) -> None:
        """All inputs are finished: emit whatever is still held (open windows, totals)."""

    def deadline(self) -> float:
        """When `on_timer` wants to run next (epoch seconds); infinity when never."""
        return INFINITY

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        """Called at or after `deadline()`: processing-time windows close here."""

    def state(self) -> str:
        """What the node must remember across a restart (saved with each acknowledgement
        of a durable input); "" when nothing."""
        return ""

    def restore(self, state: str) -> None:
        """Take back a saved `state` (called before the first batch)."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Source:
    """A synchronous source: polled by the scheduler."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def poll(self, budget: int, now: float, outs: list[Batch], failures: Failures) -> bool:
        """Append up to `budget` events to `outs`; return False once exhausted."""
        raise NotImplementedError

    def deadline(self) -> float:
        """When to poll again if the last poll produced nothing (rate limits)."""
        return 0.0

    def finish(self, outs: list[Batch]) -> None:
        """The source is done (exhausted, or asked to stop): emit whatever it still holds."""

    def position(self) -> str:
        """Where the source is, after what it has emitted, for resuming after a restart;
        "" when it cannot resume. Saved with its events on a durable edge."""
        return ""

    def resume(self, position: str) -> None:
        """Continue from a saved `position` (called before the first poll)."""


@mypyc_attr(allow_interpreted_subclasses=True)
class IndexedSource(Source):
    """A source that makes event number `i` from `i` alone (`generate`). A type whose spec
    gives it the fusion role `HEAD` is one: a fused chain it heads makes the events itself,
    in its generated loop, and asks the source only how far to go. `deadline`, `position`
    and `resume` stay the source's own."""

    def next_index(self) -> int:
        """The index of the next event to make."""
        raise NotImplementedError

    def next_limit(self, budget: int, now: float) -> int:
        """The index a poll now may make events up to (exclusive): `budget` and the
        source's own bounds (a count, a rate) decide."""
        raise NotImplementedError

    def advance_to(self, limit: int) -> None:
        """Every event before `limit` was made (handed on, or failed)."""
        raise NotImplementedError

    def alive(self) -> bool:
        """False once the source has made every event it ever will."""
        raise NotImplementedError


@mypyc_attr(allow_interpreted_subclasses=True)
class AsyncSource:
    """An IO source on asyncio. `read` returns the next batch, or None at the end."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        # Set by the runtime before each `read`: some output edge is durable.
        self.durable_outputs = False

    async def open(self) -> None:
        """Acquire the resource; raise NodeFailure with a clear line if it is missing."""

    def handed_on(self) -> None:
        """Every event of the last `read` is on the output edges: committed to the store
        where they are durable. Not called for a batch a failure left behind."""

    def done_reading(self) -> None:
        """`read` will not be called again (the end, a stop or a failure); `close` comes
        once the graph has drained."""

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        """Append the next events to `outs`; return False at the end of input.
        Bad records go to `failures.event_failed` (with their line number)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the resource."""

    def progress(self) -> tuple[int, int]:
        """(done, total) in bytes for finite inputs; (0, 0) when unknown."""
        return (0, 0)

    def position(self) -> str:
        """As `Source.position`: after the last batch `read` returned; "" when not resumable."""
        return ""

    def resume(self, position: str) -> None:
        """Continue from a saved `position` (called before `open`)."""

    def health(self) -> dict[str, object]:
        """The connection of a connector, for the stats and `engine ctl status`:
        {"connection": "connected" | "reconnecting" | ..., "reconnects": N, "last_error": "..."};
        empty for a node without one."""
        return {}


@mypyc_attr(allow_interpreted_subclasses=True)
class AsyncSink:
    """An IO sink on asyncio. Each `write` is flushed before it returns."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        # Set by the runtime around each `write`: where `give_up` sends failed events.
        self.failures: Failures | None = None
        self.failed_outs: list[Batch] = []

    async def open(self) -> None:
        """Acquire the resource; raise NodeFailure with a clear line if impossible."""

    def give_up(self, events: Batch, message: str) -> None:
        """The sink cannot deliver `events` (its own retries are spent): the node's
        `on_error` decides (dropped and logged, dead-lettered, or the graph stops)."""
        if self.failures is None:
            raise NodeFailure(message)
        self.failures.events_failed(events, message, self.failed_outs)

    async def write(self, batch: Batch) -> None:
        """Write and flush one batch; raise NodeFailure when the output is gone."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush and release."""

    def health(self) -> dict[str, object]:
        """The connection of a connector, for the stats and `engine ctl status`:
        {"connection": "connected" | "reconnecting" | ..., "reconnects": N, "last_error": "..."};
        empty for a node without one."""
        return {}


@mypyc_attr(allow_interpreted_subclasses=True)
class AsyncTransform:
    """A transform whose work is done elsewhere and awaited: a partitioned stage's instance
    on a Ray actor (adapters/ray). The runtime drives it on its own task (engine/io_drivers.py):
    it takes a batch, awaits `process`, hands the results on, and flushes at the end."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def open(self) -> None:
        """Start the remote side; raise NodeFailure with a clear line if impossible."""

    async def process(self, batch: Batch, outs: list[Batch]) -> None:
        """Handle one batch; append the results to `outs[port]`."""
        raise NotImplementedError

    def deadline(self) -> float:
        """When `on_timer` wants to run (processing-time windows held remotely)."""
        return INFINITY

    async def on_timer(self, now: float, outs: list[Batch]) -> None:
        """Called at or after `deadline()`."""

    async def flush(self, outs: list[Batch]) -> None:
        """All inputs are finished: emit whatever is still held."""

    async def close(self) -> None:
        """Release the remote side."""

    def in_flight(self) -> int:
        """Events handed to `process` whose results have not come back yet (a pipelined
        executor keeps the remote side busy while the next batch travels)."""
        return 0

    async def drain(self, outs: list[Batch]) -> None:
        """Wait for every batch in flight; append their results to `outs`."""

    def member_counters(self) -> dict[str, dict[str, object]]:
        """Counters of the nodes it runs, by instance name (`per_user[1]`)."""
        return {}
