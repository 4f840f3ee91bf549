"""The memory edge: bounded, in a `deque` (or, for a keyed policy, a dict by key).

An edge is a FIFO ring buffer (a `deque` held at or under `capacity`) between one
producer port and one consumer. What it accepts, evicts, refuses or merges is decided by its
policy's row in engine/policies.py; the edge only stores. Conservation holds on every edge at
every moment:

    enqueued == delivered + dropped + coalesced + depth

`enqueued` counts every event the producer handed over, including ones a policy then
dropped; events a `block` edge refused stay with the producer and are not counted until
they are accepted.
"""

from collections import deque
from collections.abc import Callable

from mypy_extensions import mypyc_attr

from engine.keys import key_part
from engine.node import Batch, Event
from engine.plan import EdgePlan
from engine.policies import EdgePolicy, admit, has_room, policy_named

# A control-plane tap: shown what an edge delivers; it copies what it keeps. It may return
# False to say it wants no more of the current batch (a rate-limited sampler): a fused
# chain then stops calling it per event until the next batch. None means "go on".
Observer = Callable[[Batch], bool | None]


@mypyc_attr(allow_interpreted_subclasses=True)
class Edge:
    """Memory edge. `offer` returns what the edge refused (only a policy that pushes back
    refuses, and only when full); the producer keeps that and offers it again later.

    Other storages (a durable LMDB edge, in adapters) subclass it and override `offer`,
    `take`, `ack`, `waiting` and `has_room`: the runtime only ever calls those."""

    def __init__(self, plan: EdgePlan) -> None:
        self.id = plan.id
        self.plan = plan
        self.capacity = max(1, plan.capacity)
        self.policy = plan.policy
        self.rule: EdgePolicy = policy_named(plan.policy)
        self.keyed = self.rule.keyed  # copied: read on every call
        self.pushes_back = self.rule.pushes_back
        self.queue: deque[Event] = deque()
        self.closed = False  # the producer finished; nothing more will arrive
        self.enqueued = 0
        self.delivered = 0
        self.dropped = 0
        self.coalesced = 0
        self.high_water = 0
        # Time producers waited because this edge was full (a policy that pushes back): from
        # when one found it full to when it could run again, in the runtime clock's seconds.
        self.blocked_since = 0.0
        self.blocked_s = 0.0
        self.key_fields: tuple[str, ...] = plan.key
        self.merges: dict[str, str] = dict(plan.merge)
        # Observers of what is delivered (a control-plane tap); they copy what they keep.
        self.taps: list[Observer] = []
        # Keyed policies only: key -> the queued event; insertion order is delivery order.
        self.by_key: dict[object, Event] = {}

    @property
    def depth(self) -> int:
        return self.waiting()

    def waiting(self) -> int:
        """Events accepted and not yet delivered."""
        return len(self.by_key) if self.keyed else len(self.queue)

    def stage_checkpoint(self, owner: str, position: str) -> None:
        """A durable edge saves `owner`'s position in the same transaction as the events
        that follow (once all of them are accepted); a memory edge keeps nothing."""

    def checkpoint(self, owner: str) -> str:
        """The position saved for `owner`; "" when none."""
        return ""

    def ack(self, count: int) -> None:
        """The consumer handed on the oldest `count` delivered events (its outputs are
        accepted downstream, or its sink wrote them): a durable edge may forget them now.
        A memory edge forgot them when it delivered them."""

    def has_room(self) -> bool:
        """Whether the producer may run: only a full edge whose policy pushes back says no."""
        return has_room(self.rule, len(self.by_key) if self.keyed else len(self.queue), self.capacity)

    def offer(self, events: Batch) -> Batch:
        """Hand events over; returns the ones refused (empty unless the policy pushes back)."""
        if self.keyed:
            rest = self._coalesce(events)
        else:
            queue = self.queue
            offered = len(events)
            first, stop, evict = admit(self.rule, len(queue), 0, self.capacity, offered)
            if evict:
                if evict >= len(queue):
                    queue.clear()
                else:
                    for _ in range(evict):
                        queue.popleft()
            accepted = stop - first
            if accepted == offered:
                queue.extend(events)
            elif accepted == 1:  # keep_latest's every batch: no slice
                queue.append(events[first])
            elif accepted:
                queue.extend(events[first:stop])
            if self.pushes_back:
                self.enqueued += accepted
                rest = events[stop:] if stop < offered else []
            else:
                self.enqueued += offered
                self.dropped += offered - accepted + evict
                rest = []
        depth = self.depth
        if depth > self.high_water:
            self.high_water = depth
        return rest

    def take(self, budget: int) -> Batch:
        """Up to `budget` events, oldest first."""
        out = self._take_coalesced(budget) if self.keyed else self._take_queued(budget)
        if self.taps:
            for tap in self.taps:
                tap(out)
        return out

    def _take_queued(self, budget: int) -> Batch:
        queue = self.queue
        n = len(queue)
        if n <= budget:
            out = list(queue)
            queue.clear()
        else:
            out = [queue.popleft() for _ in range(budget)]
        self.delivered += len(out)
        return out

    def drained(self) -> bool:
        return self.closed and self.depth == 0

    def hand_over(self) -> Batch:
        """Every waiting event, oldest first, removed without counting it as delivered: a
        partial reload moves them to the edge that replaces this one (engine/node_swap.py)."""
        if self.keyed:
            events = list(self.by_key.values())
            self.by_key.clear()
        else:
            events = list(self.queue)
            self.queue.clear()
        self.enqueued -= len(events)  # conservation: they were never delivered here
        return events

    def _coalesce(self, events: Batch) -> Batch:
        by_key = self.by_key
        fields = self.key_fields
        one = len(fields) == 1
        first = fields[0] if one else ""
        _, room, _ = admit(self.rule, len(by_key), 0, self.capacity, len(events))  # new keys that fit
        added = 0
        for index, event in enumerate(events):
            # Lists and objects are keys too, and `true` is not `1` (engine/keys.py).
            key = key_part(event.get(first)) if one else tuple([key_part(event.get(f)) for f in fields])
            queued = by_key.get(key)
            if queued is not None:
                by_key[key] = merge_events(queued, event, self.merges)
                self.coalesced += 1
                self.enqueued += 1
            elif added < room:
                by_key[key] = event
                added += 1
                self.enqueued += 1
            else:
                return events[index:]
        return []

    def _take_coalesced(self, budget: int) -> Batch:
        by_key = self.by_key
        if len(by_key) <= budget:
            out = list(by_key.values())
            by_key.clear()
        else:
            keys = list(by_key)[:budget]
            out = [by_key.pop(k) for k in keys]
        self.delivered += len(out)
        return out

    def storage_counters(self) -> dict[str, int]:
        """What the edge's storage adds to its counters (a durable edge: bytes on disk,
        commits); a memory edge adds nothing."""
        return {}

    def counters(self) -> dict[str, int]:
        return {
            "enqueued": self.enqueued,
            "dropped": self.dropped,
            "coalesced": self.coalesced,
            "depth": self.depth,
            "high_water": self.high_water,
        }


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def merge_field(function: str, old: object, new: object) -> object:
    """One field of a coalesce merge. Values that cannot be combined keep the newest."""
    if old is None:
        return new
    if new is None:
        return old
    if function == "first":
        return old
    if function == "last":
        return new
    if not (_is_number(old) and _is_number(new)):
        return new
    assert isinstance(old, (int, float)) and isinstance(new, (int, float))
    if function == "sum":
        return old + new
    if function == "min":
        return old if old <= new else new
    if function == "max":
        return old if old >= new else new
    return new


def merge_events(old: Event, new: Event, merges: dict[str, str]) -> Event:
    """A new event (neither input is changed): fields listed in `merges` are combined,
    every other field takes the newest value; fields only one side has are kept."""
    merged = dict(old)
    merged.update(new)
    for field, function in merges.items():
        if field in old or field in new:
            merged[field] = merge_field(function, old.get(field), new.get(field))
    return merged
