"""A GPU segment at run time: batches in, columns through the kernels, events out.

The scheduler sees one node (a `SegmentRunner`) for the whole chain. Events arriving at the
head wait until `batch_size` of them are there or the oldest has waited `max_delay`; then
they become columns once, every step runs (fused kernels, or NumPy), and the survivors
become events once. Per member the counters, errors and dead letters are what the nodes
would show one by one: the kernels record, per row, the step where it stopped and why.

A failed row is handed to its member's `on_error` as that member received it: the segment
recomputes the steps before the member for those rows only (the same backend, so the same
values). Taps on links inside the segment get their events the same way, only while tapped.
A segment fed by a durable edge runs each delivered batch at once, so an acknowledged event
has always been processed.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from adapters.gpu.columns import to_columns, to_events
from adapters.gpu.numpy_backend import Outcome
from adapters.gpu.program import NOT_ENTERED, Program
from adapters.gpu.reduce_window import ReduceTotals
from engine.chain import Chain
from engine.edges import Edge
from engine.ids import DEFAULT_PORT
from engine.node import INFINITY, Batch, Clock, Failures, Transform
from engine.runner import NodeRunner

# (program, columns, entered) -> Outcome. The Outcome's arrays may be the runner's own and
# overwritten by its next run of the same program (OpenCL's download areas): read them first.
Runner = Callable[[Program, dict[str, Any], Any], Outcome]


class GpuSegment(Chain):
    def __init__(self, runners: list[NodeRunner], links: list[Edge], program: Program, run: Runner,
                 clock: Clock, immediate: bool) -> None:
        super().__init__(runners, links)
        self.program = program
        self.run = run
        self.clock = clock
        self.batch_size = program.batch_size
        self.immediate = immediate  # fed by a durable edge: nothing may wait past its acknowledgement
        self.max_delay_s = program.max_delay_ms / 1000.0
        self.buffer: Batch = []
        self.first_at = 0.0
        reduce = program.reduce
        self.totals = ReduceTotals(reduce) if reduce is not None else None
        self.batches = 0  # kernel runs, for statistics and tests
        # The tail's `out` port among the chain's ports.
        self.out_port = self.member_ports[-1][runners[-1].plan.outputs.index(DEFAULT_PORT)]
        self.placement = ""  # where it runs, in words (set by the builder)

    # -- batching ---------------------------------------------------------------------------

    def add(self, batch: Batch, outs: list[Batch]) -> None:
        if self.immediate:  # the whole delivery now, in runs of at most batch_size
            for lo in range(0, len(batch), self.batch_size):
                self.run_batch(batch[lo:lo + self.batch_size], outs)
            return
        if not self.buffer:
            self.first_at = self.clock.now()
        self.buffer.extend(batch)
        while len(self.buffer) >= self.batch_size:
            events, self.buffer = self.buffer[:self.batch_size], self.buffer[self.batch_size:]
            self.run_batch(events, outs)
            self.first_at = self.clock.now()

    def deadline(self) -> float:
        soonest = self.first_at + self.max_delay_s if self.buffer else INFINITY
        if self.totals is not None:
            soonest = min(soonest, self.totals.deadline())
        return soonest

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        if self.buffer and now >= self.first_at + self.max_delay_s:
            events, self.buffer = self.buffer, []
            self.run_batch(events, outs)
        if self.totals is not None:
            self.emit(self.totals.close_due(now), outs)

    def flush(self, outs: list[Batch]) -> None:
        if self.buffer:
            events, self.buffer = self.buffer, []
            self.run_batch(events, outs)
        if self.totals is not None:
            self.emit(self.totals.close_all(), outs)

    # -- one batch --------------------------------------------------------------------------

    def run_batch(self, events: Batch, outs: list[Batch]) -> None:
        self.point_views(outs)
        before = [len(o) for o in outs]
        program = self.program
        columns, entered, problems = to_columns(events, program.columns)
        head_errors = self.runners[0].errors
        for row in sorted(problems):
            head_errors.event_failed(events[row], problems[row], self.views[0])
        outcome = self.run(program, columns, entered)
        self.batches += 1
        self.fail_rows(events, columns, outcome)
        if self.taps:
            self.tap_links(events, columns, outcome)
        steps = len(program.steps)
        if self.totals is None:
            rows = np.flatnonzero(outcome.stage == steps)
            self.emit(to_events(events, rows, outcome.columns), outs)
        else:
            assert outcome.partials is not None
            self.emit(self.totals.add(outcome.partials, self.clock.now()), outs)
        self.account(len(events), outcome.stage, outs, before)

    def emit(self, emitted: Batch, outs: list[Batch]) -> None:
        """Events leaving the tail's `out` port, counted here: a reduce also emits from
        timers and at the end of input, outside any batch."""
        if emitted:
            outs[self.out_port].extend(emitted)
            self.runners[-1].events_out += len(emitted)

    def fail_rows(self, events: Batch, columns: dict[str, Any], outcome: Outcome) -> None:
        failed = np.flatnonzero(outcome.code != 0)
        if not len(failed):
            return
        program = self.program
        codes = outcome.code[failed]
        members = np.array([program.member_of(int(c)) for c in codes.tolist()])
        for member in sorted(set(members.tolist())):
            rows = failed[members == member]
            received = self.as_received(events, columns, rows, member)  # member j runs step j
            errors = self.runners[member].errors
            for row, event in zip(rows.tolist(), received):
                errors.event_failed(event, program.failure(int(outcome.code[row])), self.views[member])

    def as_received(self, events: Batch, columns: dict[str, Any], rows: Any, steps: int) -> Batch:
        """The events of `rows` as the step at index `steps` received them."""
        if steps == 0:
            return [events[i] for i in rows.tolist()]
        prefix = self.program.prefix(steps)
        picked = {name: column[rows] for name, column in columns.items()}
        outcome = self.run(prefix, picked, np.ones(len(rows), dtype=np.bool_))
        return to_events([events[i] for i in rows.tolist()], np.arange(len(rows)), outcome.columns)

    def tap_links(self, events: Batch, columns: dict[str, Any], outcome: Outcome) -> None:
        for link, observers in self.taps.items():
            step = link + 1  # the link into member j + 1, whose step has the same index
            rows = np.flatnonzero((outcome.stage >= step) & (outcome.stage != NOT_ENTERED))
            crossed = self.as_received(events, columns, rows, step)
            if crossed:
                for observe in observers:
                    observe(crossed)

    def account(self, arrived: int, stage: Any, outs: list[Batch], before: list[int]) -> None:
        """Member and link counters after one batch, as the nodes would count one by one."""
        steps = len(self.program.steps)
        reached = np.bincount(stage[stage != NOT_ENTERED], minlength=steps + 1)
        # entering[j]: rows that reached step j or went further.
        entering = np.cumsum(reached[::-1])[::-1].tolist()
        last = len(self.runners) - 1
        for j, r in enumerate(self.runners):
            r.events_in += arrived if j == 0 else entering[j]
            passed = entering[j + 1] if j < last else 0
            if j < last:
                self.cross_link(j, passed)
            # Dead letters and the like; the tail's `out` was counted by `emit`.
            own = sum(len(outs[k]) - before[k] for k in self.ports_of[j] if k != self.out_port)
            r.events_out += passed + own


class GpuTransform(Transform):
    def __init__(self, segment: GpuSegment) -> None:
        super().__init__(segment.runners[0].ctx)
        self.segment = segment

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        self.segment.add(batch, outs)
        return len(batch)

    def deadline(self) -> float:
        return self.segment.deadline()

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        self.segment.on_timer(now, outs)

    def flush(self, outs: list[Batch]) -> None:
        self.segment.flush(outs)

