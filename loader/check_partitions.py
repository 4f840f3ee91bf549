"""Checks of `parallelism` and `partition_by` (docs/graph-format.md#parallelism-and-partitions).

They run over the stages the plan will have (engine/partition.py `find_stages`), so the loader
and the runtime agree on what runs together; each problem is placed at the key to change.
What this release refuses, and why:

- parallelism on a source or sink (they run in the engine process) or on a node of a node
  family (a GPU segment runs its chain itself): HR101;
- a stage entered through more than one edge (each instance has one input): HR100;
- a node with keyed state whose stage is not partitioned by its key, or whose key is empty (one
  total for all events): the events of one key would be split over instances, HR102;
- a durable edge into, out of or inside a stage (its at-least-once promise would need the
  acknowledgements to cross processes): HR103;
- `on_error: retry` on a parallel node (retries wait on the engine's scheduler, which a remote
  instance does not have): HR104.

`partition_by` into a node that runs as one instance changes nothing: a warning, HR105.
"""

from dataclasses import replace
from typing import Final

from engine.errors import RETRY
from engine.ids import edge_id
from engine.partition import entry_edges, find_stages
from engine.plan import EdgePlan, StagePlan
from engine.spec import TRANSFORM, SpecRegistry
from loader.checked import CheckedGraph, CheckedInput, CheckedNode
from loader.compile import compile_graph
from loader.document import Document, KeyPath
from loader.problems import ERROR, WARNING, Problem, format_path

MANY_ENTRIES: Final = "HR100"
NOT_PARALLEL: Final = "HR101"
KEY_NOT_PARTITIONED: Final = "HR102"
DURABLE_IN_STAGE: Final = "HR103"
RETRY_IN_PARALLEL: Final = "HR104"
PARTITION_UNUSED: Final = "HR105"


def partition_problems(doc: Document, registry: SpecRegistry, graph: CheckedGraph) -> list[Problem]:
    """The problems of the graph's parallel nodes and partitioned edges; none for a graph
    without them (most graphs: nothing is compiled then)."""
    if not any(n.parallelism > 1 or any(i.edge.partition_by for i in n.inputs) for n in graph.nodes.values()):
        return []
    return _Partitions(doc, registry, graph).problems()


class _Partitions:
    def __init__(self, doc: Document, registry: SpecRegistry, graph: CheckedGraph) -> None:
        self.doc = doc
        self.registry = registry
        self.graph = graph
        self.found: list[Problem] = []
        # Each edge id -> the input that wrote it (its place in the file).
        self.inputs: dict[str, CheckedInput] = {
            edge_id(i.node, i.port, name): i for name, node in graph.nodes.items() for i in node.inputs}

    def add(self, code: str, path: KeyPath, message: str, hint: str, severity: str = ERROR) -> None:
        pos = self.doc.locate(path, at_key=True)
        self.found.append(Problem(code, severity, self.doc.file, pos.line, pos.column, format_path(path),
                                  message, hint))

    def problems(self) -> list[Problem]:
        refused = {name for name, node in sorted(self.graph.nodes.items()) if not self.may_be_parallel(node)}
        for name, node in sorted(self.graph.nodes.items()):
            if node.parallelism > 1 and name not in refused and node.on_error.action == RETRY:
                self.add(RETRY_IN_PARALLEL, ("nodes", name, "on_error"),
                         f"'{name}' runs as {node.parallelism} instances and cannot retry: retries wait on the "
                         "engine's scheduler, which an instance in another process does not have",
                         "use `on_error: drop` or `on_error: dead_letter`, or set `parallelism: 1`")
            for entry in node.inputs:
                if entry.edge.partition_by and node.parallelism == 1:
                    self.add(PARTITION_UNUSED, self.option_path(entry, "partition_by"),
                             f"partition_by has no effect: '{name}' runs as one instance",
                             f"remove `partition_by`, or give '{name}' `parallelism: N`", severity=WARNING)
        plan = compile_graph(self.graph)
        # A node refused above is checked no further: its stage is built as if it ran alone.
        nodes = tuple(replace(n, parallelism=1) if n.name in refused else n for n in plan.nodes)
        for stage in find_stages(nodes, plan.edges):
            self.stage(stage, plan.edges)
        return self.found

    def may_be_parallel(self, node: CheckedNode) -> bool:
        """HR101 for a node whose kind or family cannot run in instances."""
        if node.parallelism == 1:
            return True
        path: KeyPath = ("nodes", node.name, "parallelism")
        family = self.registry.family_of(node.spec.name)
        if node.spec.kind != TRANSFORM:
            self.add(NOT_PARALLEL, path,
                     f"'{node.name}' is a {node.spec.kind} ({node.spec.name}) and cannot run in parallel: "
                     "sources and sinks run in the engine process",
                     "remove `parallelism`, and give it to the transforms that do the work")
            return False
        if family is not None:
            self.add(NOT_PARALLEL, path,
                     f"'{node.name}' ({node.spec.name}) is a node of the {family.name} family, whose chains "
                     "run in the engine process, and cannot run in parallel instances",
                     "remove `parallelism`")
            return False
        return True

    def stage(self, stage: StagePlan, edges: tuple[EdgePlan, ...]) -> None:
        members = set(stage.members)
        entries = sorted(entry_edges(members, edges), key=lambda e: e.id)
        label = _stage_label(stage)
        for extra in entries[1:]:
            self.add(MANY_ENTRIES, self.inputs[extra.id].path,
                     f"{label} is entered by {len(entries)} edges ({', '.join(e.id for e in entries)}); "
                     "a partitioned stage takes one input edge",
                     f"join the inputs in a node without `parallelism` (its `from:` lists them) and feed "
                     f"'{extra.to_node}' from that node, or set `parallelism: 1` on '{extra.to_node}'")
        for e in edges:
            if e.durable and (e.from_node in members or e.to_node in members):
                self.durable(e, stage)
        for name in stage.members:
            self.keyed(self.graph.nodes[name], stage)

    def durable(self, e: EdgePlan, stage: StagePlan) -> None:
        entry = self.inputs[e.id]
        written = self.option_path(entry, "durable")
        inherited = written not in self.doc.keys
        inside = e.from_node in stage.members, e.to_node in stage.members
        where = {(False, True): "into", (True, False): "out of"}.get(inside, "inside")
        member = e.to_node if inside[1] else e.from_node
        self.add(DURABLE_IN_STAGE, entry.path if inherited else written,
                 f"edge '{e.id}' is durable{' (by defaults.edge)' if inherited else ''}: durable edges into or "
                 f"out of a partitioned stage are not supported (this one is {where} "
                 f"{_stage_label(stage)}, {stage.parallelism} instances)",
                 "make the edge a memory edge (`edge: {durable: false}` on this input) or set `parallelism: 1` "
                 f"on '{member}'")

    def keyed(self, node: CheckedNode, stage: StagePlan) -> None:
        """HR102: the events of one key must all reach one instance of a node with keyed state."""
        if node.spec.state_key is None:
            return
        key = node.spec.state_key(node.spec.parse(node.params))
        entry = self.inputs[stage.entry]
        kind = f"'{node.name}' ({node.spec.name})"
        if not key:
            self.add(KEY_NOT_PARTITIONED, ("nodes", node.name, "parallelism"),
                     f"{kind} keeps one state for all events (its key is empty), so it cannot run in "
                     f"{stage.parallelism} instances",
                     f"set `parallelism: 1` on '{node.name}', or key its state by a field and partition its "
                     "input by that field")
            return
        example = f"`from: {{node: {entry.node}{_port(entry)}, edge: {{partition_by: {_yaml_fields(key)}}}}}`"
        if not stage.partition_by:
            self.add(KEY_NOT_PARTITIONED, entry.path,
                     f"{kind} keeps state per {_fields(key)}, but edge '{stage.entry}' into its stage has no "
                     "partition_by: events of one key would be spread over its instances",
                     f"partition the input by the {node.spec.name}'s key: {example}")
            return
        outside = [f for f in stage.partition_by if f not in key]
        if outside:
            self.add(KEY_NOT_PARTITIONED, self.option_path(entry, "partition_by"),
                     f"edge '{stage.entry}' is partitioned by {_fields(stage.partition_by)}, but {kind} keeps "
                     f"state per {_fields(key)}: events of one key would reach different instances",
                     f"partition by {_fields(key) if len(key) == 1 else 'some or all of ' + _fields(key)}: "
                     f"{example}")

    def option_path(self, entry: CheckedInput, option: str) -> KeyPath:
        """Where an input's edge option is (or would be) written: inside its `edge:` block."""
        return entry.path + ("edge", option)


def _stage_label(stage: StagePlan) -> str:
    if len(stage.members) == 1:
        return f"the partitioned stage '{stage.name}'"
    return f"the partitioned stage '{stage.name}' ({', '.join(stage.members)})"


def _fields(fields: tuple[str, ...]) -> str:
    return " and ".join(f"'{f}'" for f in fields)


def _yaml_fields(fields: tuple[str, ...]) -> str:
    return fields[0] if len(fields) == 1 else "[" + ", ".join(fields) + "]"


def _port(entry: CheckedInput) -> str:
    return "" if entry.port == "out" else f", port: {entry.port}"
