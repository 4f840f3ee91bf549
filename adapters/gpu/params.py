"""The typed parameters of the `opencl.*` node types.

Each spec's `parse` (adapters/gpu/specs.py) builds one of these from the node's `with:`
block, once; a segment's program (program.py) is typed from them, and the class says which
step a member is. Like every parser (engine/params.py) these never raise: a value of the
wrong kind reads as not written, and the schema's problem is the one the user sees.
"""

from dataclasses import dataclass
from typing import Final

from engine.params import Pairs, Raw, optional_whole, pairs, text_of

SEGMENT_PARAMS: Final = ("columns", "batch_size", "max_delay")


@dataclass(frozen=True)
class MemberParams:
    """What any member may set for its whole segment; only the first member of a segment
    may set it (program.py says so when another does). None: not written."""

    columns: Pairs | None  # column -> type name, as written
    batch_size: int | None
    max_delay: str | None

    def segment_keys(self) -> tuple[str, ...]:
        """The segment parameters written on this member, in SEGMENT_PARAMS order."""
        written = (self.columns, self.batch_size, self.max_delay)
        return tuple(key for key, value in zip(SEGMENT_PARAMS, written, strict=True) if value is not None)


@dataclass(frozen=True)
class MapParams(MemberParams):
    set: Pairs  # column -> expression


@dataclass(frozen=True)
class FilterParams(MemberParams):
    where: str


@dataclass(frozen=True)
class ReduceParams(MemberParams):
    fields: Pairs  # output field -> `sum(column)`, `count()`, ...
    by: str  # "" for one group
    groups: int | None
    window: str | None  # a duration; None: one total per batch


@dataclass(frozen=True)
class KernelParams(MemberParams):
    inputs: Pairs  # column -> type name
    outputs: Pairs
    source: str


def _optional_text(raw: Raw, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _segment(raw: Raw) -> tuple[Pairs | None, int | None, str | None]:
    columns = pairs(raw, "columns") if isinstance(raw.get("columns"), dict) else None
    return columns, optional_whole(raw, "batch_size"), _optional_text(raw, "max_delay")


def parse_map(raw: Raw) -> MapParams:
    return MapParams(*_segment(raw), set=pairs(raw, "set"))


def parse_filter(raw: Raw) -> FilterParams:
    return FilterParams(*_segment(raw), where=text_of(raw, "where"))


def parse_reduce(raw: Raw) -> ReduceParams:
    return ReduceParams(*_segment(raw), fields=pairs(raw, "fields"), by=text_of(raw, "by"),
                        groups=optional_whole(raw, "groups"), window=_optional_text(raw, "window"))


def parse_kernel(raw: Raw) -> KernelParams:
    return KernelParams(*_segment(raw), inputs=pairs(raw, "inputs"), outputs=pairs(raw, "outputs"),
                        source=text_of(raw, "source"))

