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


_PLAIN: Final = frozenset({str, int, float, type(None)})  # values that are their own key part


class Dedupe(Transform):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, DedupeParams)
        self.fields = list(params.key)
        self.window = params.window
        # Key -> the raw values it was made from, or their JSON once `state` has written it
        # (saved with every acknowledgement of a durable input); least recent first.
        self.seen: OrderedDict[object, list[object] | str] = OrderedDict()
        self.dropped = 0

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        if len(self.fields) == 1:
            self._process_one(batch, outs[0])
            return len(batch)
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
            seen[key] = values
            if len(seen) > self.window:
                seen.popitem(last=False)
            out.append(event)
        return len(batch)

    def _process_one(self, batch: Batch, out: Batch) -> None:
        """One key field: its value is the key as it is when it is text, a number or null."""
        field = self.fields[0]
        seen = self.seen
        window = self.window
        for event in batch:
            value = event.get(field)
            key = value if value.__class__ in _PLAIN else (key_part(value),)
            if key in seen:
                seen.move_to_end(key)
                self.dropped += 1
                continue
            seen[key] = [value]
            if len(seen) > window:
                seen.popitem(last=False)
            out.append(event)

    def state(self) -> str:
        seen = self.seen
        parts: list[str] = []
        for key, values in list(seen.items()):
            if not isinstance(values, str):
                values = json.dumps(values, default=str, separators=(",", ":"))
                seen[key] = values  # written once, not with every acknowledgement
            parts.append(values)
        return "[" + ",".join(parts) + "]"

    def restore(self, state: str) -> None:
        try:
            saved = json.loads(state)
        except ValueError:
            return  # a state from an incompatible version: start empty, as after no state
        if isinstance(saved, list):
            for values in saved[-self.window:]:
                if isinstance(values, list):
                    self.seen[self.key_of(values)] = values

    def key_of(self, values: list[object]) -> object:
        """The key `process` makes of these values."""
        if len(self.fields) == 1 and len(values) == 1:
            value = values[0]
            return value if value.__class__ in _PLAIN else (key_part(value),)
        return tuple([key_part(v) for v in values])


def make_dedupe(ctx: NodeContext) -> Transform:
    return Dedupe(ctx)


def dedupe_state_key(params: object) -> tuple[str, ...]:
    """The fields that identify an event: what a dedupe remembers (spec `state_key`)."""
    assert isinstance(params, DedupeParams)
    return params.key
