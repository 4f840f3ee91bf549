"""The edge policies: one table, consulted by every edge storage.

A policy is one row: its name (the word graph files and plans use), what it does with what
does not fit (`overflow`), whether a waiting event takes later events with its key
(`keyed`), and its documentation. `admit` applies a row to one offered batch; the memory
edge (engine/edges.py) and the durable edge (adapters/storage/lmdb_edge.py) store what it decides
and nothing more. The schema's policy enum and descriptions, the loader's checks and the
policy table in docs/edges.md come from the rows too.

Adding a policy: its row in `POLICIES` (with a new overflow rule in `admit` only when none
of the four fits), `python -m adapters.cli.generate`, and tests.
"""

from dataclasses import dataclass
from typing import Final

# What a policy does with the part of a batch that does not fit. (`admit` tests the first two
# together, as the lowest codes: they are the common case.)
REFUSE: Final = 0  # the producer keeps it and offers it again later (back-pressure)
DROP_INCOMING: Final = 1  # dropped, counted
EVICT_OLDEST: Final = 2  # accepted; the oldest waiting events make room and are dropped
REPLACE: Final = 3  # only the newest event waits, whatever `capacity` says; it replaces the one waiting

BLOCK: Final = "block"
DROP_NEWEST: Final = "drop_newest"
DROP_OLDEST: Final = "drop_oldest"
KEEP_LATEST: Final = "keep_latest"
COALESCE: Final = "coalesce"


@dataclass(frozen=True)
class EdgePolicy:
    name: str
    overflow: int
    # Events whose key is already waiting merge into it and take no room (`key`, `merge`).
    keyed: bool
    # Derived from `overflow` and `keyed` by `_row`; kept as fields because edges read them per call.
    pushes_back: bool  # the producer waits while the edge is full
    uses_capacity: bool
    # Every event is delivered once, in order, unchanged: fused chains and GPU segments may run
    # across such an edge as if it were not there.
    passes_everything: bool
    # Documentation: the schema's description and docs/edges.md (`python -m adapters.cli.generate`).
    summary: str  # a few words: "block the producer"
    when_full: str
    never: str
    # Why `capacity` has no effect, and what to write instead (a load error when both are written).
    capacity_note: str
    capacity_hint: str
    since: int  # the graph-format version that introduced it: older schemas leave it out


def _row(name: str, overflow: int, summary: str, when_full: str, never: str, keyed: bool = False,
         capacity_note: str = "", capacity_hint: str = "", since: int = 1) -> EdgePolicy:
    return EdgePolicy(
        name=name, overflow=overflow, keyed=keyed, pushes_back=overflow == REFUSE,
        uses_capacity=overflow != REPLACE, passes_everything=overflow == REFUSE and not keyed,
        summary=summary, when_full=when_full, never=never,
        capacity_note=capacity_note, capacity_hint=capacity_hint, since=since,
    )


POLICIES: Final[dict[str, EdgePolicy]] = {row.name: row for row in (
    _row(BLOCK, REFUSE, "block the producer",
         "The producer waits: it is not scheduled again until the edge has room, and whatever part of "
         "its last batch did not fit stays with it and is handed over first.",
         "No event is ever dropped."),
    _row(DROP_NEWEST, DROP_INCOMING, "drop the newest events",
         "An incoming event that does not fit is dropped (counted in `dropped`). The queued events are "
         "delivered.",
         "The producer never waits."),
    _row(DROP_OLDEST, EVICT_OLDEST, "drop the oldest events",
         "The incoming event is queued and the oldest queued event is evicted (counted in `dropped`). "
         "After a burst the edge holds the newest `capacity` events.",
         "The producer never waits."),
    _row(KEEP_LATEST, REPLACE, "keep only the latest event",
         "The edge holds at most **one** undelivered event: each new event replaces the one waiting "
         "(the replaced one counts as `dropped`), and takes no `capacity`. The consumer always sees "
         "the newest value.",
         "The producer never waits.",
         capacity_note="it keeps one event",
         capacity_hint="remove `capacity`, or use `policy: drop_oldest` to keep the newest N events"),
    _row(COALESCE, REFUSE, "coalesce by key",
         "Events are queued by `key`. An event whose key is already queued is merged into the queued "
         "one (counted in `coalesced`) and keeps that one's place in the queue. An event with a new "
         "key waits, like `block`, when `capacity` distinct keys are queued.",
         "No event is dropped.",
         keyed=True),
)}
POLICY_NAMES: Final = tuple(POLICIES)


def policy_named(name: str) -> EdgePolicy:
    policy = POLICIES.get(name)
    if policy is None:
        raise ValueError(f"unknown edge policy '{name}' (known: {', '.join(POLICY_NAMES)})")
    return policy


def admit(policy: EdgePolicy, waiting: int, in_flight: int, capacity: int, offered: int) -> tuple[int, int, int]:
    """What an edge holding `waiting` undelivered and `in_flight` delivered-but-unacknowledged
    events (always 0 on a memory edge) does with a batch of `offered` events, as
    `(first, stop, evict)`: it evicts its `evict` oldest waiting events (dropped), then accepts
    `batch[first:stop]`. `batch[:first]` is dropped (superseded by newer events in the same
    batch); `batch[stop:]` is refused when the policy pushes back, else dropped.

    A keyed policy passes its batch's size and gets the number of new keys it may accept:
    events whose key is waiting merge and take no room. `capacity` counts waiting and in-flight
    events; in-flight ones can never be evicted."""
    overflow = policy.overflow
    if overflow <= DROP_INCOMING:  # REFUSE or DROP_INCOMING: the head that fits
        room = capacity - waiting - in_flight
        if room >= offered:
            return 0, offered, 0
        return 0, room if room > 0 else 0, 0
    if overflow == REPLACE:
        if offered == 0:
            return 0, 0, 0
        return offered - 1, offered, waiting
    if overflow == EVICT_OLDEST:
        slots = capacity - in_flight
        if slots < 0:
            slots = 0
        if offered >= slots:
            return offered - slots, offered, waiting
        evict = waiting + offered - slots
        return 0, offered, evict if evict > 0 else 0
    raise ValueError(f"edge policy '{policy.name}' has no overflow rule {overflow}")


def has_room(policy: EdgePolicy, held: int, capacity: int) -> bool:
    """Whether the producer may run, with `held` events waiting or in flight."""
    return not policy.pushes_back or held < capacity
