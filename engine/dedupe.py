"""The `dedupe` node: drops an event whose key it has already passed on recently.

A crash between a node handing events on and acknowledging its durable input makes those
events come again (at most one batch per edge). `dedupe` remembers the keys of the last
`window` events it passed on; its memory is saved with every acknowledgement of a durable
input, so duplicates produced upstream across a crash are dropped too.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from engine.keys import key_part
from engine.node import Batch, Failures, NodeContext, Transform
from engine.params import Raw, expect, names, whole

DEFAULT_WINDOW: Final = 4096


@dataclass(frozen=True)
class DedupeParams:
    key: tuple[str, ...]  # the fields that identify an event
    window: int = DEFAULT_WINDOW  # how many recent keys are remembered


def parse_dedupe(raw: Raw) -> DedupeParams:
    window = whole(raw, "window", DEFAULT_WINDOW)
    return DedupeParams(names(raw, "key"), window if window > 0 else DEFAULT_WINDOW)


class Dedupe(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, DedupeParams)
        self.fields = list(params.key)
        self.window = params.window
        # Key -> the JSON of its raw values (what `state` saves); oldest first.
        self.seen: OrderedDict[object, str] = OrderedDict()
        self.dropped = 0

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        out = outs[0]
        fields = self.fields
        seen = self.seen
        for event in batch:
            values = [event.get(f) for f in fields]
            key = tuple([key_part(v) for v in values])
            if key in seen:
                seen.move_to_end(key)
                self.dropped += 1
                continue
            seen[key] = json.dumps(values, default=str, separators=(",", ":"))
            if len(seen) > self.window:
                seen.popitem(last=False)
            out.append(event)
        return len(batch)

    def state(self) -> str:
        return "[" + ",".join(self.seen.values()) + "]"

    def restore(self, state: str) -> None:
        try:
            saved = json.loads(state)
        except ValueError:
            return  # a state from an incompatible version: start empty, as after no state
        if isinstance(saved, list):
            for values in saved[-self.window:]:
                if isinstance(values, list):
                    key = tuple([key_part(v) for v in values])
                    self.seen[key] = json.dumps(values, default=str, separators=(",", ":"))


def make_dedupe(ctx: NodeContext) -> Transform:
    return Dedupe(ctx)
