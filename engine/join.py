"""The `join` node: merges events of two inputs whose keys are equal and whose event times
are at most `within` apart (an interval join).

Both sides are held until no event that could still arrive may match them: the watermark
is the newest event time seen on either side minus `allowed_lateness`, as for windows
(engine/aggregate.py); an event older than the watermark is late, an error for `on_error`
(it could have matched events already let go). A held event goes once its time plus
`within` is behind the watermark; a left join then emits it alone if nothing matched it.

Output order, deterministic for a given input order (see docs/joins.md): each arriving event
first emits its matches, one per held event of the other side, in the order those arrived
(the merged event has the left fields, then the right ones); then, when it moved the
watermark on, a left join emits the unmatched left events whose window closed, by event
time and then arrival; at the end of input, the unmatched left events still held, in the
same order.
"""

import heapq
import math
from dataclasses import dataclass
from typing import Final

from engine.aggregate import format_instant, format_seconds
from engine.durations import duration_ms
from engine.functions import describe_error, parse_time, type_name
from engine.keys import key_part
from engine.node import INFINITY, Batch, Event, EventError, Failures, NodeContext, NodeFailure, Transform
from engine.params import Pairs, Raw, expect, text_of

INNER: Final = "inner"
LEFT_JOIN: Final = "left"
DEFAULT_PREFIX: Final = "r_"
DEFAULT_JOIN_LATENESS: Final = "1m"
LEFT: Final = 0  # the sides, as indexes of the node's per-side lists
RIGHT: Final = 1


@dataclass(frozen=True)
class JoinParams:
    left: str  # the input (`node` or `node.port`) whose events lead
    right: str
    on: Pairs  # (left field, right field) pairs, equal for a match
    within: str  # a duration as written
    time_field: str
    kind: str = INNER  # `type:`
    right_prefix: str = DEFAULT_PREFIX
    allowed_lateness: str = DEFAULT_JOIN_LATENESS


def parse_join(raw: Raw) -> JoinParams:
    on = raw.get("on")
    pairs: list[tuple[str, str]] = []
    if isinstance(on, str):
        pairs.append((on, on))
    elif isinstance(on, list):
        pairs.extend((str(f), str(f)) for f in on)
    elif isinstance(on, dict):
        pairs.extend((str(k), str(v)) for k, v in on.items())
    return JoinParams(text_of(raw, "left"), text_of(raw, "right"), tuple(pairs), text_of(raw, "within"),
                      text_of(raw, "time_field"), text_of(raw, "type", INNER),
                      text_of(raw, "right_prefix", DEFAULT_PREFIX),
                      text_of(raw, "allowed_lateness", DEFAULT_JOIN_LATENESS))


def join_state_key(params: object) -> tuple[str, ...]:
    """The key fields of both sides (left first): each input edge is partitioned by its own
    side's fields."""
    on = expect(params, JoinParams).on
    fields = [left for left, _ in on]
    fields.extend(right for _, right in on if right not in fields)
    return tuple(fields)


def matching_inputs(name: str, inputs: tuple[str, ...]) -> list[int]:
    """The inputs (`node` or `node.port`, as `from:` writes them) that `name` names: the
    same text, or the node's name for an input from any of its ports."""
    return [i for i, label in enumerate(inputs) if label == name or label.split(".")[0] == name]


def event_time(event: Event, field: str) -> float:
    """The event time in `field`: epoch seconds or ISO 8601 text, as windows read it."""
    if field not in event:
        raise EventError(f"missing field '{field}' in time_field")
    value = event[field]
    if isinstance(value, str):
        try:
            t = parse_time(value)
        except Exception as exc:
            raise EventError(describe_error(exc) + f" in time_field '{field}'") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
    else:
        raise EventError(f"event time must be epoch seconds or an ISO 8601 string, not {type_name(value)}, "
                         f"in time_field '{field}'")
    if not math.isfinite(t):
        raise EventError(f"event time is not a finite number in time_field '{field}'")
    return t


class Held:
    """One event the join keeps for matches still to come."""

    def __init__(self, event: Event, t: float, side: int, key: object, matched: bool) -> None:
        self.event = event
        self.t = t
        self.side = side
        self.key = key  # None: a key field is missing or null, so it never matches
        self.matched = matched


def _duration_s(ctx: NodeContext, name: str, text: str) -> float:
    ms = duration_ms(text)
    if ms is None:
        raise NodeFailure(f"node '{ctx.name}' (join): {name} must be a duration, like 10s")
    return ms / 1000.0


class Join(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, JoinParams)
        if not params.on:
            raise NodeFailure(f"node '{ctx.name}' (join): `on` names no key field")
        self.params = params
        self.fields: list[list[str]] = [[left for left, _ in params.on], [right for _, right in params.on]]
        # A right key field named as its left one holds the same value: it is not repeated.
        self.skip = frozenset(right for left, right in params.on if left == right)
        self.prefix = params.right_prefix
        self.keep_unmatched = params.kind == LEFT_JOIN
        self.time_field = params.time_field
        self.within = _duration_s(ctx, "within", params.within)
        self.lateness = _duration_s(ctx, "allowed_lateness", params.allowed_lateness)
        self.max_time = -INFINITY
        self.held: list[dict[object, list[Held]]] = [{}, {}]  # per side: key -> held events, oldest first
        # Every held event by the time it may go, (time + within, arrival, ...): a heap.
        self.expiry: list[tuple[float, int, Held]] = []
        self.seq = 0
        self.unmatched = 0
        self.labels: tuple[str, ...] = ()  # `ctx.inputs` when `sides` was worked out
        self.sides: list[int] = []  # per input index: LEFT or RIGHT

    def reads_inputs_apart(self) -> bool:
        return True

    def side_of(self, input_index: int) -> int:
        labels = self.ctx.inputs
        if labels != self.labels:
            self.sides = self.resolve(labels)
            self.labels = labels
        return self.sides[input_index]

    def resolve(self, labels: tuple[str, ...]) -> list[int]:
        where = f"node '{self.ctx.name}' (join)"
        left = matching_inputs(self.params.left, labels)
        right = matching_inputs(self.params.right, labels)
        if len(labels) != 2 or len(left) != 1 or len(right) != 1 or left == right:
            raise NodeFailure(f"{where}: left '{self.params.left}' and right '{self.params.right}' must name its "
                              f"two inputs ({', '.join(labels) or 'none'})")
        sides = [LEFT, LEFT]
        sides[right[0]] = RIGHT
        return sides

    def key(self, event: Event, side: int) -> object:
        fields = self.fields[side]
        if len(fields) == 1:
            value = event.get(fields[0])
            return None if value is None else key_part(value)
        parts: list[object] = []
        for field in fields:
            value = event.get(field)
            if value is None:
                return None
            parts.append(key_part(value))
        return tuple(parts)

    def merge(self, left: Event, right: Event) -> Event:
        out = dict(left)
        skip = self.skip
        prefix = self.prefix
        for name, value in right.items():
            if name in skip:
                continue
            out[prefix + name if name in left else name] = value
        return out

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        return self.process_from(0, batch, outs, failures)

    def process_from(self, input_index: int, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        side = self.side_of(input_index)
        out = outs[0]
        for index, event in enumerate(batch):
            try:
                t = event_time(event, self.time_field)
                watermark = self.max_time - self.lateness
                if t < watermark:
                    raise EventError(f"late event: event time {format_instant(t)} is "
                                     f"{format_seconds(watermark - t)} behind the watermark "
                                     f"(allowed_lateness {self.params.allowed_lateness})")
            except EventError as error:
                if not failures.event_failed(event, error.message, outs):
                    return index
                continue
            self.add(side, event, t, out)
            if t > self.max_time:
                self.max_time = t
                self.expire(self.max_time - self.lateness, out)
        return len(batch)

    def add(self, side: int, event: Event, t: float, out: Batch) -> None:
        """Emit `event`'s matches among the other side's held events, then hold it."""
        key = self.key(event, side)
        matched = False
        if key is not None:
            others = self.held[1 - side].get(key)
            if others is not None:
                within = self.within
                for other in others:
                    if abs(other.t - t) <= within:
                        matched = True
                        if side == LEFT:
                            out.append(self.merge(event, other.event))
                        else:
                            other.matched = True
                            out.append(self.merge(other.event, event))
        if key is None and (side == RIGHT or not self.keep_unmatched):
            return  # it can never match, and nothing would come of holding it
        held = Held(event, t, side, key, matched)
        if key is not None:
            mine = self.held[side]
            same = mine.get(key)
            if same is None:
                mine[key] = [held]
            else:
                same.append(held)
        heapq.heappush(self.expiry, (t + self.within, self.seq, held))
        self.seq += 1

    def expire(self, watermark: float, out: Batch) -> None:
        """Let go of every held event no event from now on can match."""
        expiry = self.expiry
        while expiry and expiry[0][0] < watermark:
            held = heapq.heappop(expiry)[2]
            self.let_go(held, out)

    def let_go(self, held: Held, out: Batch) -> None:
        if held.key is not None:
            mine = self.held[held.side]
            same = mine[held.key]
            same.remove(held)
            if not same:
                del mine[held.key]
        if held.side == LEFT and self.keep_unmatched and not held.matched:
            self.unmatched += 1
            out.append(held.event)

    def flush(self, outs: list[Batch]) -> None:
        expiry = self.expiry
        while expiry:
            self.let_go(heapq.heappop(expiry)[2], outs[0])

    def counters(self) -> dict[str, int]:
        return {"held": len(self.expiry), "unmatched": self.unmatched}


def make_join(ctx: NodeContext) -> Transform:
    return Join(ctx)
