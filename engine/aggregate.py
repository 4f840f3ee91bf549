"""The `aggregate` node: keyed aggregates over the whole input or per window.

Without a window, totals per key are emitted at the end of input. With one, each window
is emitted once it closes: in event time when the watermark (newest event time minus
`allowed_lateness`) reaches its end, in processing time when the clock does. Every event
is checked completely (time, lateness, arguments, accumulator updates) before any state
changes, so a failed event leaves no trace. See docs/windows.md.
"""

import math
import time
from dataclasses import dataclass
from typing import Any, Final

from engine.compile_expr import CompiledExpr, ExprCompiler
from engine.durations import duration_ms
from engine.findings import Finding
from engine.functions import describe_error, parse_time, type_name
from engine.keys import key_part
from engine.node import INFINITY, Batch, Event, EventError, Failures, NodeContext, NodeFailure, Transform
from engine.params import Pairs, Raw, expect, mapping, names, pairs, text_of, written
from engine.windows import KINDS, Accumulators, Closed, FixedWindows, Group, SessionWindows, emission_order

WINDOW_START: Final = "window_start"
WINDOW_END: Final = "window_end"
DEFAULT_LATENESS: Final = "0s"
WINDOW_CHECK: Final = "HR039"
# The durations each window type has no use for (a file that sets one gets told).
_UNUSED: Final[dict[str, tuple[str, ...]]] = {
    "tumbling": ("every", "gap"), "sliding": ("gap",), "session": ("size", "every")}


@dataclass(frozen=True)
class WindowParams:
    kind: str  # `type:`: tumbling, sliding or session
    # Durations as written (None: not written), read with engine/durations.py.
    size: str | None = None
    every: str | None = None
    gap: str | None = None
    time_field: str = ""  # "": processing time
    allowed_lateness: str = DEFAULT_LATENESS

    def duration(self, key: str) -> str | None:
        return self.size if key == "size" else self.every if key == "every" else self.gap


@dataclass(frozen=True)
class AggregateParams:
    fields: Pairs  # output field -> aggregate call
    by: tuple[str, ...] = ()  # (): one group for all events
    window: WindowParams | None = None  # None: totals at the end of input


def parse_aggregate(raw: Raw) -> AggregateParams:
    window = mapping(raw, "window")
    parsed = None
    if window is not None:
        parsed = WindowParams(text_of(window, "type"), written(window, "size"), written(window, "every"),
                              written(window, "gap"), text_of(window, "time_field"),
                              text_of(window, "allowed_lateness", DEFAULT_LATENESS))
    return AggregateParams(pairs(raw, "fields"), names(raw, "by"), parsed)


def without_window(params: object) -> bool:
    """Fusable: a window is closed by time between passes, which a fused chain cannot do."""
    return expect(params, AggregateParams).window is None


def check_aggregate(params: object) -> list[Finding]:
    """Window options that contradict each other (paths inside `with:`)."""
    window = expect(params, AggregateParams).window
    if window is None:
        return []
    found: list[Finding] = []
    kind = window.kind
    for key in _UNUSED.get(kind, ()):
        if window.duration(key) is not None:
            found.append(Finding(WINDOW_CHECK, ("window", key), f"'{key}' does not apply to {kind} windows",
                                 f"remove '{key}', or change the window type", at_key=True))
    size, every = duration_ms(window.size), duration_ms(window.every)
    if kind == "sliding" and size is not None and every is not None and (every > size or every == 0):
        found.append(Finding(WINDOW_CHECK, ("window", "every"), "'every' must be greater than 0 and at most 'size'",
                             "a sliding window starts every `every` and lasts `size`"))
    return found


def format_instant(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC, with milliseconds when there are any."""
    try:
        whole = math.floor(t)
        ms = round((t - whole) * 1000)
        if ms == 1000:
            whole, ms = whole + 1, 0
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    except (OverflowError, OSError, ValueError):
        return repr(t)
    return text + (f".{ms:03d}" if ms else "") + "Z"


def format_seconds(seconds: float) -> str:
    ms = round(seconds * 1000)
    if ms == 0:
        return "less than 1ms"
    if ms < 1000:
        return f"{ms}ms"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0") + "s"


def _duration(ctx: NodeContext, window: WindowParams, name: str) -> int:
    ms = duration_ms(window.duration(name))
    if ms is None or ms <= 0:
        raise NodeFailure(f"node '{ctx.name}' (aggregate): window.{name} must be a duration above 0")
    return ms


class Aggregate(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, AggregateParams)
        compiler = ExprCompiler(ctx.rng, ctx.clock)
        self.by: list[str] = list(params.by)
        self.names: list[str] = []
        self.args: list[CompiledExpr | None] = []
        kinds: list[int] = []
        where: list[str] = []
        for name, source in params.fields:
            fn, arg = compiler.aggregate_call(source, f"fields.{name}")
            self.names.append(name)
            kinds.append(KINDS[fn])
            self.args.append(arg)
            where.append(f" in fields.{name} '{source}'")
        self.acc = Accumulators(kinds, where)

        self.groups: dict[object, Group] = {}  # without a window
        self.fixed: FixedWindows | None = None
        self.sessions: SessionWindows | None = None
        window = params.window if params.window is not None else WindowParams("")
        kind = window.kind
        if kind == "tumbling":
            size = _duration(ctx, window, "size")
            self.fixed = FixedWindows(size, size)
        elif kind == "sliding":
            size, every = _duration(ctx, window, "size"), _duration(ctx, window, "every")
            if every > size:
                raise NodeFailure(f"node '{ctx.name}' (aggregate): window.every must be at most window.size")
            self.fixed = FixedWindows(size, every)
        elif kind == "session":
            self.sessions = SessionWindows(_duration(ctx, window, "gap"))
        self.windowed = self.fixed is not None or self.sessions is not None
        self.time_field = window.time_field
        self.event_time = self.windowed and bool(self.time_field)
        self.lateness_text = window.allowed_lateness
        self.lateness = (duration_ms(window.allowed_lateness) or 0) / 1000.0
        # Event time: the newest event time. Processing time: the latest clock reading,
        # which never goes back, so a closed window is never opened again.
        self.max_time = -INFINITY
        self.seq = 0  # events accepted so far

    def evaluate(self, event: Event) -> list[object]:
        """Every field's argument for one event (None for `count()`)."""
        args = self.args
        values: list[object] = [None] * len(args)
        i = 0
        try:
            while i < len(args):
                arg = args[i]
                if arg is not None:
                    values[i] = arg.fn(event)
                i += 1
        except Exception as exc:
            raise self.acc.fail(i, exc) from None
        return values

    # -- events ------------------------------------------------------------------------

    def key(self, event: Event) -> object:
        by = self.by
        if not by:
            return None
        if len(by) == 1:
            return key_part(event.get(by[0]))
        return tuple([key_part(event.get(f)) for f in by])

    def event_time_of(self, event: Event) -> float:
        field = self.time_field
        if field not in event:
            raise EventError(f"missing field '{field}' in window.time_field")
        value = event[field]
        if isinstance(value, str):
            try:
                t = parse_time(value)
            except Exception as exc:
                raise EventError(describe_error(exc) + f" in window.time_field '{field}'") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            t = float(value)
        else:
            raise EventError(f"event time must be epoch seconds or an ISO 8601 string, not "
                             f"{type_name(value)}, in window.time_field '{field}'")
        if not math.isfinite(t):
            raise EventError(f"event time is not a finite number in window.time_field '{field}'")
        return t

    def late(self, t: float, watermark: float) -> EventError:
        return EventError(f"late event: event time {format_instant(t)} is {format_seconds(watermark - t)} "
                          f"behind the watermark (allowed_lateness {self.lateness_text})")

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        if self.windowed and not self.event_time:
            self.on_timer(self.ctx.clock.now(), outs)
        t = self.max_time
        for index, event in enumerate(batch):
            try:
                if not self.windowed:
                    self.add_total(event)
                    continue
                if self.event_time:
                    t = self.event_time_of(event)
                if self.fixed is not None:
                    self.add_fixed(self.fixed, event, t)
                elif self.sessions is not None:
                    self.add_session(self.sessions, event, t)
            except EventError as error:
                if not failures.event_failed(event, error.message, outs):
                    return index
                continue
            if t > self.max_time:
                self.max_time = t
                self.close(t - self.lateness, outs)
        return len(batch)

    def watermark(self) -> float:
        return self.max_time - self.lateness if self.event_time else self.max_time

    def add_total(self, event: Event) -> None:
        key = self.key(event)
        group = self.groups.get(key)
        values = self.evaluate(event)
        new = self.acc.advance(group.states if group is not None else self.acc.initial(), values)
        if group is None:
            self.groups[key] = Group([event.get(f) for f in self.by], self.seq, new)
        else:
            group.states = new
        self.acc.commit(new, values)
        self.seq += 1

    def add_fixed(self, fixed: FixedWindows, event: Event, t: float) -> None:
        watermark = self.watermark()
        starts = [s for s in fixed.starts_for(t) if fixed.end_of(s) > watermark]
        if not starts:
            raise self.late(t, watermark)
        key = self.key(event)
        values = self.evaluate(event)
        updates: list[tuple[int, Group | None, list[Any]]] = []
        for start in starts:
            group = fixed.group(start, key)
            states = group.states if group is not None else self.acc.initial()
            updates.append((start, group, self.acc.advance(states, values)))
        by_values = [event.get(f) for f in self.by]
        for start, group, new in updates:
            if group is None:
                fixed.add(start, key, Group(by_values, self.seq, new))
            else:
                group.states = new
            self.acc.commit(new, values)
        self.seq += 1

    def add_session(self, sessions: SessionWindows, event: Event, t: float) -> None:
        key = self.key(event)
        found = sessions.overlapping(key, t)
        watermark = self.watermark()
        if not found and t + sessions.gap <= watermark:
            raise self.late(t, watermark)
        values = self.evaluate(event)
        if not found:
            new = self.acc.advance(self.acc.initial(), values)
            sessions.open(key, t, Group([event.get(f) for f in self.by], self.seq, new))
        else:
            states = found[0].group.states
            for later in found[1:]:
                states = self.acc.merge(states, later.group.states)
            new = self.acc.advance(states, values)
            sessions.extend(found, t, new)
        self.acc.commit(new, values)
        self.seq += 1

    # -- emission ----------------------------------------------------------------------

    def close(self, limit: float, outs: list[Batch]) -> None:
        closed: list[Closed] = []
        if self.fixed is not None:
            if self.fixed.next_end() > limit:
                return
            self.fixed.close(limit, closed)
        elif self.sessions is not None:
            if self.sessions.next_end() > limit:
                return
            self.sessions.close(limit, closed)
        self.emit(closed, outs[0])

    def emit(self, closed: list[Closed], out: Batch) -> None:
        closed.sort(key=emission_order)
        for end, start, _, group in closed:
            event = self.output(group)
            event[WINDOW_START] = start
            event[WINDOW_END] = end
            out.append(event)

    def output(self, group: Group) -> Event:
        event: Event = {}
        for field, value in zip(self.by, group.by_values):
            event[field] = value
        for name, value in zip(self.names, self.acc.results(group.states)):
            event[name] = value
        return event

    def flush(self, outs: list[Batch]) -> None:
        if not self.windowed:
            out = outs[0]
            for group in self.groups.values():
                out.append(self.output(group))
            self.groups = {}
            return
        closed: list[Closed] = []
        if self.fixed is not None:
            self.fixed.close_all(closed)
        elif self.sessions is not None:
            self.sessions.close_all(closed)
        self.emit(closed, outs[0])

    def deadline(self) -> float:
        if self.event_time:
            return INFINITY
        if self.fixed is not None:
            return self.fixed.next_end()
        if self.sessions is not None:
            return self.sessions.next_end()
        return INFINITY

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        if self.windowed and not self.event_time and now > self.max_time:
            self.max_time = now
            self.close(now, outs)

    def open_windows(self) -> int:
        """Windows held in state (sessions count one per key): what memory grows with."""
        if self.fixed is not None:
            return self.fixed.open_windows()
        if self.sessions is not None:
            return self.sessions.open_windows()
        return 0


def make_aggregate(ctx: NodeContext) -> Aggregate:
    return Aggregate(ctx)


def aggregate_state_key(params: object) -> tuple[str, ...]:
    """The fields an aggregate groups by: its state per key (spec `state_key`)."""
    assert isinstance(params, AggregateParams)
    return params.by
