"""The router in front of a partitioned stage: each event to one instance's port.

With `partition_by`, an event goes to instance `stable_hash(key) % N`, where the key is the
field's value (a missing field reads as null) or, for several fields, the list of their
values in the order written: every event of one key reaches the same instance, in the order
it arrived. Without it, events are dealt round-robin, one batch's events in turn.
"""

from dataclasses import dataclass
from typing import Final

from engine.node import Batch, Failures, NodeContext, Transform
from engine.stable_hash import stable_hash

# Instances of recent keys: a key's hash is computed once, not per event. Bounded: a stream
# of ever-new keys starts it afresh when full.
CACHE_KEYS: Final = 65536
_SCALARS: Final = frozenset({str, int, float, type(None)})


@dataclass(frozen=True)
class RouterParams:
    partition_by: tuple[str, ...]
    instances: int


def parse_router(raw: dict[str, object]) -> RouterParams:
    fields = raw.get("partition_by", [])
    count = raw.get("instances", 1)
    return RouterParams(tuple(str(f) for f in fields) if isinstance(fields, list) else (),
                        count if isinstance(count, int) and count > 0 else 1)


class PartitionRouter(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = ctx.params
        assert isinstance(params, RouterParams)
        self.fields = list(params.partition_by)
        self.n = params.instances
        self.next = 0  # round-robin: the instance of the next event
        # Key -> instance, for text, numbers and null (dict keys merge exactly the values
        # stable_hash merges: 2 and 2.0); booleans and containers are hashed each time.
        self.cache: dict[object, int] = {}

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        n = self.n
        fields = self.fields
        if not fields:
            start = self.next
            for i, event in enumerate(batch):
                outs[(start + i) % n].append(event)
            self.next = (start + len(batch)) % n
        elif len(fields) == 1:
            field = fields[0]
            cache = self.cache
            for event in batch:
                value = event.get(field)
                if type(value) in _SCALARS:
                    index = cache.get(value, -1)
                    if index < 0:
                        index = self.remember(value, stable_hash(value) % n)
                else:
                    index = stable_hash(value) % n
                outs[index].append(event)
        else:
            for event in batch:
                outs[stable_hash([event.get(f) for f in fields]) % n].append(event)
        return len(batch)

    def remember(self, key: object, index: int) -> int:
        if len(self.cache) >= CACHE_KEYS:
            self.cache.clear()
        self.cache[key] = index
        return index
