"""The durable edge: the policies of engine/policies.py, kept in LMDB.

Each edge is one named database of the process's `LmdbStore` (layout: adapters/storage/lmdb_table.py).
An event leaves the database only when its consumer acknowledges it, so after a crash or
restart everything still there is delivered again, in order: at least once, and only the
events that were in flight (taken, not yet acknowledged) can arrive twice.

- `offer` writes what it accepts in one transaction (one fsync per batch with `sync`).
- `take` returns the oldest undelivered events and moves a read cursor kept in memory; they
  stay in the database, *in flight*, until `ack(count)` deletes the oldest `count`.
- `capacity` bounds what the edge holds: undelivered plus in flight. A consumer holding a
  taken batch keeps its producer waiting until it hands the batch on, which keeps the
  database, and what a crash can duplicate, within `capacity`. In-flight events are never
  evicted: `drop_oldest` evicts only undelivered events; `keep_latest` keeps one undelivered
  event besides those in flight (`engine.policies.admit` counts them).
- When the store cannot take a write (the map at its size limit, or a full disk) the edge
  behaves as full: a policy that pushes back (`block`, `coalesce`) refuses the batch, the
  others drop it (counted), and one warning says so until a write succeeds again.
- Counters are this process's, except `depth`: the database's count of undelivered events.
  Events found there at start count as enqueued then, so that
  `enqueued == delivered + dropped + coalesced + depth` holds in every process.

The newest undelivered events (at most `CACHED`) are kept as objects too, so a consumer that
keeps up takes them without reading and decoding; older ones are read back in order.
"""

import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from adapters.storage.lmdb_store import DurableStorageError, LmdbStore
from adapters.storage.lmdb_table import EdgeTable, encode
from engine.edges import Edge, merge_events
from engine.keys import key_part
from engine.node import Batch, Event
from engine.plan import EdgePlan, GraphPlan
from engine.policies import admit, has_room
from engine.runtime import STATE_SUFFIX

LOG: Final = logging.getLogger("headrace")
CACHED: Final = 2048  # undelivered events also held as objects, per edge


def durable_edges(store: LmdbStore) -> Callable[[GraphPlan, EdgePlan], Edge]:
    """The `durable` factory `engine.runtime.Runtime` takes."""
    return lambda plan, edge: LmdbEdge(edge, store, plan.name)


class LmdbEdge(Edge):
    def __init__(self, plan: EdgePlan, store: LmdbStore, graph: str) -> None:
        super().__init__(plan)
        self.store = store
        self.graph = graph
        self.table = EdgeTable(store, graph, plan.id)
        # Loaded on first use, not here: `engine serve` builds a reloaded graph's edges while
        # the old version still drains the same databases.
        self.loaded = False
        self.next_seq = 0  # the key of the next event written
        self.read_seq = 0  # at or before the oldest undelivered event's key
        self.undelivered = 0
        self.in_flight = 0  # taken, not acknowledged: always the oldest events stored
        self.unerased = 0  # acknowledged, but the store was full when deleting them
        self.cache: deque[tuple[int, Event]] = deque()  # the newest undelivered, consecutive keys
        self.cache_limit = CACHED
        self.seq_of: dict[object, int] = {}  # keyed policies: key -> the undelivered event taking merges
        self.staged: dict[str, str] = {}  # producer -> position, saved with the next complete offer
        self.staged_states: dict[str, str] = {}  # consumer -> state, saved with the next acknowledgement
        self.warned = False

    # -- the runtime's interface ----------------------------------------------------------

    def waiting(self) -> int:
        if not self.loaded:
            self._load()
        return self.undelivered

    def has_room(self) -> bool:
        if not self.pushes_back:
            return True  # without loading: a dropping edge never holds its producer up
        if not self.loaded:
            self._load()
        return has_room(self.rule, self.undelivered + self.in_flight, self.capacity)

    def counters(self) -> dict[str, int]:
        if not self.loaded:
            self._load()  # before `enqueued` is read: loading sets it
        return super().counters()

    def storage_counters(self) -> dict[str, int]:
        return {"durable_bytes": self.table.size_bytes(), "durable_commits": self.table.commits}

    def offer(self, events: Batch) -> Batch:
        self._use()
        if not events:
            return []
        if self.keyed:
            return self._offer_coalesce(events)
        n = len(events)
        first, stop, evict = admit(self.rule, self.undelivered, self.in_flight, self.capacity, n)
        keep = events if first == 0 and stop == n else events[first:stop]
        rest = events[stop:] if self.pushes_back else []
        if not self._write(keep, evict, {}, not rest):
            return self._full(events)
        if self.pushes_back:
            self.enqueued += len(keep)
        else:
            self.enqueued += n
            self.dropped += n - len(keep) + evict
        self._high_water()
        return rest

    def take(self, budget: int) -> Batch:
        self._use()
        out: Batch = []
        older = min(budget, self.undelivered - len(self.cache))  # stored before the cached ones
        if older > 0:
            out, seqs = self.table.read(self.read_seq, older)
            self.read_seq = seqs[-1] + 1
            if self.keyed:
                self._forget_keys(out, seqs)
        cache = self.cache
        cached = min(budget - len(out), len(cache))
        if cached > 0:
            if cached == len(cache):
                taken = list(cache)
                cache.clear()
            else:
                taken = [cache.popleft() for _ in range(cached)]
            fresh = [event for _, event in taken]
            if self.keyed:
                self._forget_keys(fresh, [seq for seq, _ in taken])
            out.extend(fresh)
            self.read_seq = taken[-1][0] + 1
        self.undelivered -= len(out)
        self.in_flight += len(out)
        self.delivered += len(out)
        if self.taps:
            for tap in self.taps:
                tap(out)
        return out

    def ack(self, count: int) -> None:
        if not self.loaded:
            return  # nothing was taken
        self._use()
        erase = min(self.unerased + count, self.in_flight)
        if erase <= 0 and not self.staged_states:
            return
        if not self.table.erase(erase, self.staged_states):
            self.unerased = erase  # still in flight; deleted with the next acknowledgement
            self._warn("acknowledged events stay stored until they can be deleted")
            return
        self.unerased = 0
        self.in_flight -= erase
        self.staged_states = {}

    def stage_checkpoint(self, owner: str, position: str) -> None:
        """A producer's position is saved with the offer that completes its batch; the
        consumer's state (`node#state`) with its next acknowledgement. (A position saved
        with an acknowledgement could get ahead of events still refused, and lose them.)"""
        if owner == self.plan.to_node + STATE_SUFFIX:
            self.staged_states[owner] = position
        else:
            self.staged[owner] = position

    def checkpoint(self, owner: str) -> str:
        return self.table.checkpoint(owner)

    # -- storage --------------------------------------------------------------------------

    def _load(self) -> None:
        """Pick up what the database holds: all of it is undelivered, in key order."""
        self.read_seq, self.next_seq, self.undelivered, stored = self.table.scan(self.keyed)
        # Coalesce: a later stored event with the same key takes the merges.
        self.seq_of = {self._key(event): seq for seq, event in stored}
        # Keep the newest as objects too, so merges into them need no read back; the cache
        # holds consecutive keys ending at the newest (after a crash, in-flight ones remain).
        run = 0
        while run < min(len(stored), self.cache_limit) and stored[-1 - run][0] == self.next_seq - 1 - run:
            run += 1
        self.cache.extend(stored[len(stored) - run:])
        self.enqueued = self.high_water = self.undelivered
        self.store.claim(self.table.name, self)
        self.loaded = True

    def _use(self) -> None:
        if not self.loaded:
            self._load()
        elif not self.store.owns(self.table.name, self):
            raise DurableStorageError(f"durable edge '{self.id}' of graph '{self.graph}' is in use by a newer "
                                      "version of the graph")

    def _write(self, keep: Batch, evict: int, changed: dict[int, Event], complete: bool) -> bool:
        """One transaction: delete the `evict` oldest undelivered events, rewrite the merged
        ones in `changed`, append `keep`, and save staged positions if the offer is
        `complete` (nothing refused). False, with nothing changed, when the store is full."""
        staged = self.staged if complete else {}
        if not keep and not evict and not changed and not staged:
            return True
        try:
            values = [encode(event) for event in keep]
            rewrites = {seq: encode(event) for seq, event in changed.items()}
        except (TypeError, ValueError, RecursionError) as exc:
            raise DurableStorageError(f"durable edge '{self.id}': an event cannot be stored as JSON ({exc})") from None
        first = self.next_seq
        after = self.table.write(self.read_seq, evict, rewrites, first, values, staged)
        if after is None:
            return False
        self.warned = False
        cache = self.cache
        if evict:
            from_cache = evict - (self.undelivered - len(cache))  # the oldest are not cached
            for _ in range(min(max(from_cache, 0), len(cache))):
                cache.popleft()
            self.read_seq = after
        if changed and cache:
            base = cache[0][0]
            for seq, event in changed.items():
                if seq >= base:
                    cache[seq - base] = (seq, event)
        cache.extend(zip(range(first, first + len(keep)), keep))
        while len(cache) > self.cache_limit:
            cache.popleft()  # still stored; read back when its turn comes
        self.next_seq = first + len(keep)
        self.undelivered += len(keep) - evict
        if staged:
            self.staged = {}
        return True

    def _full(self, events: Batch) -> Batch:
        """The store took nothing: a policy that pushes back refuses, the others drop."""
        if self.pushes_back:
            self._warn("its producer waits")
            return events
        self._warn("new events are dropped (counted in `dropped`)")
        self.enqueued += len(events)
        self.dropped += len(events)
        return []

    def _warn(self, consequence: str) -> None:
        if not self.warned:
            self.warned = True
            LOG.warning(f"durable edge '{self.id}' {self.store.full_reason}: {consequence}; {self.store.full_fix}",
                        extra={"graph": self.graph, "edge": self.id})

    def _high_water(self) -> None:
        self.high_water = max(self.high_water, self.undelivered)

    # -- coalesce -------------------------------------------------------------------------

    def _key(self, event: Event) -> object:
        fields = self.key_fields
        if len(fields) == 1:
            return key_part(event.get(fields[0]))
        return tuple([key_part(event.get(f)) for f in fields])

    def _forget_keys(self, taken: Batch, seqs: list[int]) -> None:
        """Taken events take no more merges. (After a restart two stored events can share a
        key; the later takes the merges, and stays listed when the earlier is taken.)"""
        seq_of = self.seq_of
        for event, seq in zip(taken, seqs):
            key = self._key(event)
            if seq_of.get(key) == seq:
                del seq_of[key]

    def _offer_coalesce(self, events: Batch) -> Batch:
        seq_of, merges = self.seq_of, self.merges
        _, room, _ = admit(self.rule, self.undelivered, self.in_flight, self.capacity, len(events))  # new keys
        fresh: Batch = []  # events with keys not queued yet, in order
        fresh_at: dict[object, int] = {}
        changed: dict[int, Event] = {}  # key of a queued event -> it, merged
        merged = 0
        accepted = len(events)
        for index, event in enumerate(events):
            key = self._key(event)
            at = fresh_at.get(key)
            if at is not None:
                fresh[at] = merge_events(fresh[at], event, merges)
            elif key in seq_of:
                seq = seq_of[key]
                queued = changed.get(seq)
                changed[seq] = merge_events(queued if queued is not None else self._queued(seq), event, merges)
            elif len(fresh) < room:
                fresh_at[key] = len(fresh)
                fresh.append(event)
                continue
            else:
                accepted = index
                break
            merged += 1
        rest = events[accepted:]
        first = self.next_seq
        if not self._write(fresh, 0, changed, not rest):
            return self._full(events)
        for key, at in fresh_at.items():
            seq_of[key] = first + at
        self.enqueued += accepted
        self.coalesced += merged
        self._high_water()
        return rest

    def _queued(self, seq: int) -> Event:
        cache = self.cache
        if cache and seq >= cache[0][0]:
            return cache[seq - cache[0][0]][1]
        return self.table.get(seq)
