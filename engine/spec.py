"""Node-type specs: one declaration per type feeds validation, schema, docs and runtime.

A spec is data. Its `params` is the JSON Schema of the node's `with:` block; every
property carries a type, description and example (and a default where there is one).
`expressions` says which parameters hold expressions, so the loader can check them with
the right scope; `ports_from` names a parameter whose keys become extra output ports.
"""

from dataclasses import dataclass
from typing import Callable, Final, Iterable, Union

from engine.chain import SegmentBuilder
from engine.ids import DEFAULT_PORT
from engine.node import AsyncSink, AsyncSource, NodeContext, Source, Transform

RuntimeNode = Union[Transform, Source, AsyncSource, AsyncSink]
NodeFactory = Callable[[NodeContext], RuntimeNode]
# Called by the loader with its checked graph and document; returns its problems. Typed
# loosely here because the loader's types live outside the engine.
GraphCheck = Callable[[object, object], list[object]]

SOURCE: Final = "source"
TRANSFORM: Final = "transform"
SINK: Final = "sink"
KINDS: Final = (SOURCE, TRANSFORM, SINK)

# How an expression parameter is laid out in `with:`.
ONE: Final = "one"  # the parameter itself is an expression
EACH_VALUE: Final = "each_value"  # a mapping whose every value is an expression


@dataclass(frozen=True)
class ExprParam:
    param: str
    layout: str = ONE
    # Names the expression may read; empty means "any event field".
    scope: tuple[str, ...] = ()
    # Values are `count()`, `sum(x)`, ...: one aggregate call over ordinary expressions.
    aggregate: bool = False


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str
    summary: str
    params: dict[str, object]
    outputs: tuple[str, ...] = (DEFAULT_PORT,)
    ports_from: str = ""
    extra_ports: tuple[str, ...] = ()
    expressions: tuple[ExprParam, ...] = ()
    example: str = ""
    since: int = 1  # the graph-format version that introduced the type
    # Builds the runtime object; None for types that can be validated but not run here.
    factory: NodeFactory | None = None
    # A family of types that runs as chains (SpecRegistry.segment_builders), e.g. "opencl".
    segment: str = ""

    @property
    def takes_input(self) -> bool:
        return self.kind != SOURCE

    @property
    def has_output(self) -> bool:
        return self.kind != SINK

    def output_ports(self, params: dict[str, object]) -> tuple[str, ...]:
        """The ports this node offers, given its (already validated) parameters."""
        if not self.has_output:
            return ()
        ports = list(self.outputs)
        if self.ports_from:
            dynamic = params.get(self.ports_from)
            if isinstance(dynamic, dict):
                ports.extend(str(k) for k in dynamic)
        ports.extend(self.extra_ports)
        return tuple(ports)


class SpecRegistry:
    """Node specs by type name. Tests copy and extend it; nothing global is mutated."""

    def __init__(self, specs: Iterable[NodeSpec] = (), segment_builders: dict[str, SegmentBuilder] | None = None,
                 graph_checks: list[GraphCheck] | None = None) -> None:
        self._specs: dict[str, NodeSpec] = {}
        for spec in specs:
            self.register(spec)
        # Family -> what runs its chains (see engine/chain.py).
        self.segment_builders: dict[str, SegmentBuilder] = dict(segment_builders or {})
        # Whole-graph checks a family adds to validation (the loader calls them).
        self.graph_checks: list[GraphCheck] = list(graph_checks or [])

    def register(self, spec: NodeSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"node type {spec.name!r} is already registered")
        if spec.kind not in KINDS:
            raise ValueError(f"node type {spec.name!r} has unknown kind {spec.kind!r}")
        self._specs[spec.name] = spec

    def get(self, name: str) -> NodeSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[NodeSpec]:
        return [self._specs[n] for n in self.names()]

    def copy(self) -> "SpecRegistry":
        return SpecRegistry(self._specs.values(), self.segment_builders, self.graph_checks)


def param(
    schema: dict[str, object],
    description: str,
    example: object,
    default: object = None,
) -> dict[str, object]:
    """One `with:` property: its JSON Schema plus the documentation every field carries."""
    out = dict(schema)
    out["description"] = description
    out["examples"] = [example]
    if default is not None:
        out["default"] = default
    return out


def params_schema(
    properties: dict[str, dict[str, object]],
    required: tuple[str, ...] = (),
    min_properties: int = 0,
) -> dict[str, object]:
    out: dict[str, object] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    if min_properties:
        out["minProperties"] = min_properties
    return out


EXPRESSION: Final[dict[str, object]] = {"type": "string", "minLength": 1}
DURATION: Final[dict[str, object]] = {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$"}
FIELD_LIST: Final[dict[str, object]] = {"type": "array", "items": {"type": "string", "minLength": 1}}
