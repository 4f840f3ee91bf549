"""The `throttle` node: at most `rate` events per `per` interval, per key.

Intervals are processing time (the node's clock, so `engine test`'s virtual clock makes a
throttle exact and instant), aligned to whole multiples of `per` from the epoch like
tumbling windows: each key may pass `rate` events in each interval. What exceeds it is
dropped and counted (`dropped`), or, with `when_exceeded: delay`, waits for the next
interval: the node stops taking input there (its upstream edges fill and push back) and
its deadline wakes it when the interval starts. Delay keeps the order of events, so a key
over its rate holds back the events behind it, whatever their keys.

State: one count per key seen in the current interval, all forgotten when the next starts.
"""

import math
from dataclasses import dataclass
from typing import Final

from engine.durations import duration_ms
from engine.keys import key_part
from engine.node import INFINITY, Batch, Event, Failures, NodeContext, NodeFailure, Transform
from engine.params import Raw, expect, names, text_of, whole
from engine.spec import DURATION, TRANSFORM, NodeSpec, param, params_schema

DROP: Final = "drop"
DELAY: Final = "delay"
DEFAULT_PER: Final = "1s"


@dataclass(frozen=True)
class ThrottleParams:
    rate: int  # events per interval, per key
    per: str = DEFAULT_PER  # the interval, a duration as written
    key: tuple[str, ...] = ()  # (): one budget for all events
    when_exceeded: str = DROP


def parse_throttle(raw: Raw) -> ThrottleParams:
    return ThrottleParams(whole(raw, "rate", 1), text_of(raw, "per", DEFAULT_PER), names(raw, "key"),
                          text_of(raw, "when_exceeded", DROP))


def throttle_state_key(params: object) -> tuple[str, ...]:
    """Its counts are per `key` (none: one count for all, which never runs in parallel)."""
    return expect(params, ThrottleParams).key


class Throttle(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, ThrottleParams)
        per_ms = duration_ms(params.per)
        if per_ms is None or per_ms <= 0:
            raise NodeFailure(f"node '{ctx.name}' (throttle): per must be a duration above 0, like 1s")
        if params.rate < 1:
            raise NodeFailure(f"node '{ctx.name}' (throttle): rate must be at least 1")
        self.per_ms = per_ms
        self.rate = params.rate
        self.fields = list(params.key)
        self.delay = params.when_exceeded == DELAY
        self.interval = -(2 ** 62)  # the current interval's number (its start is number * per)
        self.counts: dict[object, int] = {}  # events passed per key in the current interval
        self.wait_until = INFINITY  # delay: an event waits for the interval starting then
        self.waiting: Event | None = None  # ... and this is it (counted once in `delayed`)
        self.dropped = 0
        self.delayed = 0

    def start_of(self, interval: int) -> float:
        return interval * self.per_ms / 1000.0

    def interval_at(self, now: float) -> int:
        """The interval `now` falls in, by the same arithmetic as `start_of`, so a deadline
        at an interval's start is in that interval."""
        k = math.floor(now * 1000.0 / self.per_ms)
        if self.start_of(k + 1) <= now:
            return k + 1
        if self.start_of(k) > now:
            return k - 1
        return k

    def key(self, event: Event) -> object:
        fields = self.fields
        if not fields:
            return None
        if len(fields) == 1:
            return key_part(event.get(fields[0]))
        return tuple([key_part(event.get(f)) for f in fields])

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        now = self.ctx.clock.now()
        interval = self.interval_at(now)
        if interval != self.interval:
            self.interval = interval
            self.counts = {}
        counts = self.counts
        rate = self.rate
        out = outs[0]
        for index, event in enumerate(batch):
            key = self.key(event)
            n = counts.get(key, 0)
            if n < rate:
                counts[key] = n + 1
                out.append(event)
                continue
            if not self.delay:
                self.dropped += 1
                continue
            if self.waiting is not event:
                self.waiting = event
                self.delayed += 1
            self.wait_until = self.start_of(interval + 1)
            return index  # the rest is offered again; the deadline wakes the node
        self.waiting = None
        self.wait_until = INFINITY
        return len(batch)

    def deadline(self) -> float:
        return self.wait_until

    def on_timer(self, now: float, outs: list[Batch]) -> None:
        # The next interval has begun: `process`, called next, takes the waiting events.
        self.wait_until = INFINITY

    def counters(self) -> dict[str, int]:
        return {"dropped": self.dropped, "delayed": self.delayed}


def make_throttle(ctx: NodeContext) -> Transform:
    return Throttle(ctx)


THROTTLE: Final = NodeSpec(
    name="throttle",
    kind=TRANSFORM,
    summary="Passes at most `rate` events per `per` interval (processing time), per `key`; the "
            "excess is dropped (counted as `dropped`) or waits for the next interval (`delay`, "
            "which pushes back on the inputs).",
    params=params_schema({
        "rate": param({"type": "integer", "minimum": 1}, "Events allowed per interval, per key.", 100),
        "per": param(DURATION, "The interval; intervals start at whole multiples of it (like tumbling windows).",
                     "1s", default=DEFAULT_PER),
        "key": param({"anyOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
                     "Field or fields with a budget each. Omitted: one budget for all events.", "user"),
        "when_exceeded": param({"enum": [DROP, DELAY]},
                               "`drop`: the excess is dropped and counted in `dropped`. `delay`: it waits for "
                               "the next interval, in order (counted in `delayed`), and the node stops taking "
                               "input meanwhile.", DELAY, default=DROP),
    }, required=("rate",)),
    factory=make_throttle,
    parse=parse_throttle,
    state_key=throttle_state_key,
    example="type: throttle\nfrom: alerts\nwith: {rate: 5, per: 1m, key: host}",
)
