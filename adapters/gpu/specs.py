"""Specs of the `opencl.*` node types: numeric work that runs as GPU segments."""

from collections.abc import Iterable
from typing import Final

from adapters.gpu.dtypes import DTYPES
from adapters.gpu.params import MemberParams, parse_filter, parse_kernel, parse_map, parse_reduce
from adapters.gpu.program import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DELAY_MS,
    FILTER,
    KERNEL,
    MAP,
    REDUCE,
    TYPES,
)
from engine.chain import LAST_MEMBER, MEMBER, NOT_MEMBER
from engine.node import Batch, Failures, NodeContext, NodeFailure, Transform
from engine.params import expect
from engine.plan import NodePlan
from engine.spec import DURATION, EACH_VALUE, EXPRESSION, ONE, TRANSFORM, ExprParam, NodeSpec, param, params_schema

FAMILY: Final = "opencl"
_COLUMN_TYPES: Final[dict[str, object]] = {"type": "object", "minProperties": 1,
                                           "additionalProperties": {"enum": list(DTYPES)}}

# What the first node of a segment may set for the whole segment.
_SEGMENT: Final[dict[str, dict[str, object]]] = {
    "columns": param(_COLUMN_TYPES,
                     "The segment's first node only: field -> column type "
                     f"({', '.join(DTYPES)}). Events become these columns on entry; an event "
                     "without a valid value fails on this node (`on_error`).",
                     {"temp_c": "float32", "sensor": "int32"}),
    "batch_size": param({"type": "integer", "minimum": 1, "maximum": 16777216},
                        "The segment's first node only: events per kernel run "
                        f"(default {DEFAULT_BATCH_SIZE}).", 262144),
    "max_delay": param(DURATION, "The segment's first node only: the longest an event waits for its "
                       f"batch to fill before the batch runs anyway (default {DEFAULT_MAX_DELAY_MS}ms).", "50ms"),
}


class SegmentMember(Transform):
    """An `opencl.*` node's own runtime object. Its segment (adapters/gpu/segment_runtime.py) runs
    it; the scheduler never hands it a batch, and if it did, that is an engine bug."""

    def process(self, batch: Batch, outs: list[Batch], failures: Failures) -> int:
        raise NodeFailure(f"node '{self.ctx.name}' ({self.ctx.type_name}) runs only inside its GPU segment")


def make_member(ctx: NodeContext) -> Transform:
    return SegmentMember(ctx)


def _params(own: dict[str, dict[str, object]], required: tuple[str, ...]) -> dict[str, object]:
    return params_schema(_SEGMENT | own, required=required)


OPENCL_MAP: Final = NodeSpec(
    name=MAP,
    kind=TRANSFORM,
    summary="Sets numeric columns from expressions, as one step of a GPU segment (fused with its "
            "neighbours into one kernel). See [GPU segments](gpu.md).",
    params=_params({
        "set": param({"type": "object", "minProperties": 1, "additionalProperties": EXPRESSION},
                     "Column -> numeric expression over the columns as this node receives them.",
                     {"temp_f": "temp_c * 1.8 + 32"}),
    }, ("set",)),
    expressions=(ExprParam("set", EACH_VALUE),),
    factory=make_member,
    parse=parse_map,
    example="type: opencl.map\nfrom: readings\nwith:\n  columns: {temp_c: float32}\n"
            "  set: {temp_f: \"temp_c * 1.8 + 32\"}",
)

OPENCL_FILTER: Final = NodeSpec(
    name=FILTER,
    kind=TRANSFORM,
    summary="Passes on the events whose condition over the columns holds, as one step of a GPU "
            "segment. See [GPU segments](gpu.md).",
    params=_params({
        "where": param(EXPRESSION, "Condition over the columns.", "temp_f > 100 and sensor != 7"),
    }, ("where",)),
    expressions=(ExprParam("where", ONE),),
    factory=make_member,
    parse=parse_filter,
    example="type: opencl.filter\nfrom: readings\nwith:\n  columns: {temp_f: float32}\n  where: \"temp_f > 100\"",
)

OPENCL_REDUCE: Final = NodeSpec(
    name=REDUCE,
    kind=TRANSFORM,
    summary="Totals columns per batch or per processing-time window, optionally by a small integer "
            "key; emits one event per group. It ends its GPU segment. See [GPU segments](gpu.md).",
    params=_params({
        "fields": param({"type": "object", "minProperties": 1,
                         "additionalProperties": {"type": "string", "minLength": 1}},
                        "Output field -> sum(column) | min(column) | max(column) | mean(column) | count().",
                        {"avg_temp": "mean(temp_c)", "readings": "count()"}),
        "by": param({"type": "string", "minLength": 1},
                    "An integer column holding the group, 0 .. groups-1. Omitted: one group.", "sensor"),
        "groups": param({"type": "integer", "minimum": 1, "maximum": 65536},
                        "How many groups `by` can name (required with `by`).", 64),
        "window": param(DURATION, "Emit per tumbling processing-time window of this length (and at the end "
                        "of input). Omitted: one event per group for every batch the segment runs.", "10s"),
    }, ("fields",)),
    factory=make_member,
    parse=parse_reduce,
    example="type: opencl.reduce\nfrom: readings\nwith:\n  columns: {sensor: int32, temp_c: float32}\n"
            "  by: sensor\n  groups: 64\n  window: 10s\n"
            "  fields: {avg_temp: \"mean(temp_c)\", n: \"count()\"}",
)

OPENCL_KERNEL: Final = NodeSpec(
    name=KERNEL,
    kind=TRANSFORM,
    summary="The escape hatch: OpenCL C statements run per event over declared input columns, "
            "assigning declared output columns. Needs an OpenCL device (PoCL runs it on a CPU). "
            "See [GPU segments](gpu.md).",
    params=_params({
        "inputs": param({"type": "object", "additionalProperties": {"enum": list(DTYPES)}},
                        "Column -> type the code reads (must match the column's type).", {"x": "float32"}),
        "outputs": param(_COLUMN_TYPES, "Column -> type the code assigns.", {"score": "float32"}),
        "source": param({"type": "string", "minLength": 1},
                        "OpenCL C statements. Inputs are read-only values, outputs variables named as "
                        "the columns; `return;` ends early. A result that is not finite fails the event.",
                        "score = x > 0.0f ? log1p(x) : 0.0f;"),
    }, ("outputs", "source")),
    factory=make_member,
    parse=parse_kernel,
    example="type: opencl.kernel\nfrom: readings\nwith:\n  columns: {x: float32}\n  inputs: {x: float32}\n"
            "  outputs: {score: float32}\n"
            "  source: \"score = x * x + 1.0f;\"",
)

OPENCL_SPECS: Final = (OPENCL_MAP, OPENCL_FILTER, OPENCL_REDUCE, OPENCL_KERNEL)
SPECS_BY_TYPE: Final = {spec.name: spec for spec in OPENCL_SPECS}


def typed_members(members: Iterable[tuple[str, str, dict[str, object]]]) -> list[tuple[str, MemberParams]]:
    """(name, type, `with:` mapping) members as `build_program` takes them: each parsed by its
    type's spec, as the runtime parses a node's parameters."""
    return [(name, expect(SPECS_BY_TYPE[type_name].parse(raw), MemberParams)) for name, type_name, raw in members]


def membership(node: NodePlan) -> int:
    """How a node takes part in GPU segments (engine/chain.py:find_chains): every `opencl.*`
    node is in one; an `opencl.reduce` ends its segment (its totals leave as events)."""
    if node.type not in TYPES:
        return NOT_MEMBER
    return LAST_MEMBER if node.type == REDUCE else MEMBER
