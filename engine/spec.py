"""Node-type specs: one declaration per type feeds validation, schema, docs and runtime.

A spec is data. Its `params` is the JSON Schema of the node's `with:` block; every
property carries a type, description and example (and a default where there is one).
`expressions` says which parameters hold expressions, so the loader can check them with
the right scope; `ports_from` names a parameter whose keys become extra output ports.

It also says what a node of the type is, so that no other module lists type names: `parse`
builds the frozen parameter class its factory receives (engine/params.py), `checks` finds
what the schema cannot say (inconsistent options), `fusion` is its role in fused chains
(engine/fusion.py), and `since` the graph-format version it appeared in.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from engine.chain import SegmentBuilder
from engine.findings import Finding
from engine.fused_code import MemberCode
from engine.ids import DEFAULT_PORT
from engine.node import AsyncSink, AsyncSource, AsyncTransform, NodeContext, Source, Transform
from engine.params import no_params
from engine.plan import GraphPlan

RuntimeNode: TypeAlias = Transform | Source | AsyncSource | AsyncSink | AsyncTransform
NodeFactory = Callable[[NodeContext], RuntimeNode]
# A node family's whole-graph check over the plan the loader compiled (so it sees the graph
# exactly as it will run). Its findings are placed by key path; the loader locates them.
PlanCheck = Callable[[GraphPlan], list[Finding]]

SOURCE: Final = "source"
TRANSFORM: Final = "transform"
SINK: Final = "sink"
KINDS: Final = (SOURCE, TRANSFORM, SINK)

# Builds a type's parameter object from its `with:` mapping; must not raise (engine/params.py).
ParamsParser = Callable[[dict[str, object]], object]
# Cross-field checks over the parsed parameters. Each finding's path starts inside `with:`
# (`("window", "every")`); the loader puts the node's place in front and locates it.
ParamsCheck = Callable[[object], list[Finding]]
# The fields that key a node's state, from its parsed parameters (NodeSpec.state_key).
StateKey = Callable[[object], tuple[str, ...]]


def no_checks(params: object) -> list[Finding]:
    return []


def always(params: object) -> bool:
    return True


# Where a type may sit in a fused chain (engine/fusion.py).
HEAD: Final = "head"  # a source that starts a chain: its code makes each event from the index `i`
STEP: Final = "step"  # anywhere after the head: hands the event on (changed or not) or drops it
LAST: Final = "last"  # only at the end: its output fans out, or it holds events (totals), or it has none

# What the events on a type's `out` port are, for ownership (whether a fused map may change
# the event it receives in place).
FRESH: Final = "fresh"  # new objects nobody else holds
FORWARDED: Final = "forwarded"  # the very objects it received
SHARED: Final = "shared"  # may be held elsewhere too (or the type has no `out` port)


@dataclass(frozen=True)
class FusionRole:
    place: str
    output: str
    # Writes the type's part of the fused loop (engine/fused_code.py).
    code: MemberCode
    # Whether a node's parameters allow fusing it (an aggregate with a window holds events
    # across passes on a timer, which a chain cannot); over the parsed parameters.
    fusable: Callable[[object], bool] = always


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
    # The graph-format version that introduced the type: the schema of an older version
    # leaves it out (loader/schema_gen.py), so an old file cannot use it.
    since: int = 1
    # Builds the runtime object from a context whose `params` is what `parse` built;
    # None for types that can be validated but not run here.
    factory: NodeFactory | None = None
    # The default suits only a type without parameters: the registry refuses it for the
    # others, so no factory is ever handed a mapping by accident.
    parse: ParamsParser = no_params
    checks: ParamsCheck = no_checks
    # The type's role in fused chains; None: its nodes always run on their own.
    fusion: FusionRole | None = None
    # For a type without a fusion role: FRESH when the events on its `out` port are new
    # objects nobody else holds (a decoding source), so a fused map after it may set
    # fields in place instead of copying each event.
    output: str = SHARED
    # Parameters whose values are secret, never printed (engine/secrets.py masks them): a
    # password or token whole; a URL or DSN only its password (`postgresql://u:****@h/db`).
    secrets: tuple[str, ...] = ()
    # A source that acknowledges what it read to its system (XACK, a JetStream ack, PUBACK):
    # `engine validate` warns (HR071) when one of its output edges is not durable, since
    # what sits in a memory edge is then lost in a crash (at-most-once).
    acknowledges: bool = False
    # Keyed state (engine/partition.py): the event fields that pick which of its state an
    # event touches (an aggregate's `by`, a dedupe's `key`), from the parsed parameters.
    # None: the type keeps no per-key state, so parallel instances may take events
    # round-robin. A type with keyed state runs in parallel only behind an edge whose
    # `partition_by` is among these fields; an empty tuple (a global total) never does.
    state_key: "StateKey | None" = None

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


@dataclass(frozen=True)
class NodeFamily:
    """Node types that plug in as one bundle (the GPU family; connectors next): their specs,
    what runs their chains where members cannot run one by one, and whole-graph checks."""

    name: str
    specs: tuple[NodeSpec, ...]
    segment_builder: SegmentBuilder | None = None
    checks: tuple[PlanCheck, ...] = ()


class SpecRegistry:
    """Node specs by type name, and the families some of them come in. Tests copy and
    extend it; nothing global is mutated."""

    def __init__(self, specs: Iterable[NodeSpec] = (), families: Iterable[NodeFamily] = ()) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self._families: dict[str, NodeFamily] = {}
        self._family_of: dict[str, str] = {}  # type name -> family name
        for spec in specs:
            self.register(spec)
        for family in families:
            self.add_family(family)

    def add_family(self, family: NodeFamily) -> None:
        """Register the family's specs and keep the family for its builder and checks."""
        if family.name in self._families:
            raise ValueError(f"node family {family.name!r} is already registered")
        for spec in family.specs:
            self.register(spec)
            self._family_of[spec.name] = family.name
        self._families[family.name] = family

    def families(self) -> list[NodeFamily]:
        return list(self._families.values())

    def family_of(self, type_name: str) -> NodeFamily | None:
        family = self._family_of.get(type_name)
        return self._families[family] if family is not None else None

    def families_in(self, plan: GraphPlan) -> list[NodeFamily]:
        """The families with a node in `plan`, in registration order (a builder runs only
        for graphs with its types: the GPU one imports NumPy and PyOpenCL)."""
        used = {self._family_of[n.type] for n in plan.nodes if n.type in self._family_of}
        return [family for name, family in self._families.items() if name in used]

    def register(self, spec: NodeSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"node type {spec.name!r} is already registered")
        if spec.kind not in KINDS:
            raise ValueError(f"node type {spec.name!r} has unknown kind {spec.kind!r}")
        if spec.parse is no_params and spec.params.get("properties"):
            raise ValueError(f"node type {spec.name!r} has parameters but no `parse` building its parameter class")
        self._specs[spec.name] = spec

    def get(self, name: str) -> NodeSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[NodeSpec]:
        return [self._specs[n] for n in self.names()]

    def copy(self) -> "SpecRegistry":
        loose = [spec for name, spec in self._specs.items() if name not in self._family_of]
        return SpecRegistry(loose, self._families.values())


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
