"""Semantic checks after the schema: references, ports, cycles, edge options, expressions.

Runs on whatever parts of the document are well-formed (the schema has already reported
the rest), and produces the checked stage: nodes with their inputs resolved.
"""

import re

from engine.errors import RETRY
from engine.expr import suggest
from engine.ids import NAME_PATTERN, split_port_ref
from engine.plan import DEFAULT_POLICY, ERRORS_PORT
from engine.policies import POLICIES
from engine.spec import SpecRegistry
from loader.check_expressions import expression_problems
from loader.check_partitions import partition_problems
from loader.checked import (
    CheckedGraph,
    CheckedInput,
    CheckedNode,
    dead_letters,
    edge_options,
    error_policy,
    parallelism,
    with_defaults,
)
from loader.document import Document, KeyPath
from loader.findings import as_problems
from loader.problems import ERROR, WARNING, Problem, format_path
from loader.schema_gen import PORT_REF_PATTERN
from migrations.v1_to_v2 import TO_VERSION as EDGE_BLOCK_VERSION  # the version that grouped edge options

# The edge options of the current format. (Semantic checks see an older file's own words only
# when the schema already refused it, and it never compiles: migrations/ renames the rest.)
_EDGE_KEYS = ("capacity", "policy", "key", "merge", "durable", "partition_by")
_KEYED = [p.name for p in POLICIES.values() if p.keyed]
_KEYED_NAMES = " or ".join(f"'{name}'" for name in _KEYED)
UNREAD_OUTPUT = "HR070"
ACKED_IN_MEMORY = "HR071"
_PORT_REF = re.compile(PORT_REF_PATTERN)
_NAME = re.compile(NAME_PATTERN)


class _Checker:
    def __init__(self, doc: Document, registry: SpecRegistry, declared: set[str], version: int = 1) -> None:
        self.doc = doc
        self.version = version  # of the document as checked (an old file is upgraded first)
        self.registry = registry
        self.problems: list[Problem] = []
        # Every node name in the file, including nodes whose own definition is broken.
        self.declared = declared

    def add(self, code: str, path: KeyPath, message: str, hint: str = "", at_key: bool = False,
            severity: str = ERROR) -> None:
        pos = self.doc.locate(path, at_key=at_key)
        self.problems.append(Problem(code, severity, self.doc.file, pos.line, pos.column,
                                     format_path(path), message, hint))

    def valid_names(self, names: list[str]) -> list[str]:
        return [n for n in names if _NAME.match(n)]

    def nodes(self, raw_nodes: dict[str, object]) -> dict[str, CheckedNode]:
        checked: dict[str, CheckedNode] = {}
        for name, raw in raw_nodes.items():
            if not isinstance(raw, dict):
                continue
            type_name = raw.get("type")
            spec = self.registry.get(type_name) if isinstance(type_name, str) else None
            if spec is None:
                continue
            params = raw.get("with", {})
            params = dict(params) if isinstance(params, dict) else {}
            written_on_error = raw.get("on_error")
            node = CheckedNode(name, spec, with_defaults(spec, params), error_policy(written_on_error),
                               parallelism=parallelism(raw.get("parallelism")))
            node.ports = spec.output_ports(params) + ((ERRORS_PORT,) if dead_letters(node.on_error) else ())
            checked[name] = node
            self.problems.extend(expression_problems(self.doc, ("nodes", name), spec, params))
            # The type's own cross-field rules, placed inside the node's `with:`.
            self.problems += as_problems(self.doc, spec.checks(spec.parse(params)),
                                         f"the checks of node type '{spec.name}'", ("nodes", name, "with"))
            self.on_error(("nodes", name, "on_error"), written_on_error)
        return checked

    def on_error(self, path: KeyPath, on_error: object) -> None:
        if isinstance(on_error, dict) and on_error.get("action") != RETRY:
            for key in ("attempts", "backoff", "then"):
                if key in on_error:
                    self.add("HR025", path + (key,), f"'{key}' applies only to `action: retry`",
                             f"remove '{key}', or use action: retry", at_key=True)

    def inputs(self, raw_nodes: dict[str, object], nodes: dict[str, CheckedNode],
               defaults: dict[str, object]) -> None:
        for name, node in nodes.items():
            raw = raw_nodes[name]
            assert isinstance(raw, dict)
            path: KeyPath = ("nodes", name, "from")
            source = raw.get("from")
            if not node.spec.takes_input:
                if source is not None:
                    self.add("HR034", path, f"'{name}' is a {node.spec.name} source and takes no input",
                             "remove `from:`", at_key=True)
                continue
            if source is None:
                self.add("HR034", ("nodes", name), f"'{name}' ({node.spec.name}) needs an input",
                         "add `from:` naming the node it reads from", at_key=True)
                continue
            entries = source if isinstance(source, list) else [source]
            paths = [path + (i,) for i in range(len(entries))] if isinstance(source, list) else [path]
            seen: set[tuple[str, str]] = set()
            for entry, entry_path in zip(entries, paths):
                resolved = self.one_input(entry, entry_path, nodes, defaults)
                if resolved is None:
                    continue
                if (resolved.node, resolved.port) in seen:
                    self.add("HR036", entry_path, f"'{name}' lists input '{entry_label(resolved)}' twice",
                             "remove the repeated entry")
                    continue
                seen.add((resolved.node, resolved.port))
                node.inputs.append(resolved)

    def one_input(self, entry: object, path: KeyPath, nodes: dict[str, CheckedNode],
                  defaults: dict[str, object]) -> CheckedInput | None:
        options: dict[str, object] = dict(defaults)
        if isinstance(entry, str):
            if not _PORT_REF.match(entry):
                return None  # the schema reported its form already
            upstream, port = split_port_ref(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("node"), str):
            port_value = entry.get("port", "out")
            if not isinstance(port_value, str):
                return None  # the schema reported its type already
            upstream, port = entry["node"], port_value
            written = self.written_options(entry)
            options.update({k: written[k] for k in _EDGE_KEYS if k in written})
        else:
            return None
        target = nodes.get(upstream)
        if target is None and upstream in self.declared:
            return None  # declared, but its own definition is broken and already reported
        if target is None:
            names = self.valid_names(sorted(self.declared))
            hint = suggest(upstream, names) or "nodes in this graph: " + ", ".join(names)
            self.add("HR032", path, f"unknown node '{upstream}' in from", hint)
            return None
        if not target.spec.has_output and port not in target.ports:
            self.add("HR038", path, f"'{upstream}' is a sink ({target.spec.name}) and has no output",
                     "read from the node that feeds it instead")
            return None
        if port not in target.ports:
            hint = suggest(port, list(target.ports)) or f"'{upstream}' has ports: " + ", ".join(target.ports)
            if port == ERRORS_PORT:
                hint = f"give '{upstream}' `on_error: dead_letter` to get an errors port"
            self.add("HR033", path, f"'{upstream}' has no output port '{port}'", hint)
            return None
        self.edge_options(path, options, entry)
        return CheckedInput(upstream, port, edge_options(options), path)

    def written_options(self, entry: dict[str, object]) -> dict[str, object]:
        """Version 2 groups an input's edge options in `edge:`; version 1 mixed them in."""
        if self.version >= EDGE_BLOCK_VERSION:
            block = entry.get("edge")
            return block if isinstance(block, dict) else {}
        return entry

    def edge_options(self, path: KeyPath, options: dict[str, object], entry: object) -> None:
        policy = options.get("policy", DEFAULT_POLICY)
        written = self.written_options(entry) if isinstance(entry, dict) else {}
        block = path + ("edge",) if self.version >= EDGE_BLOCK_VERSION else path
        if isinstance(entry, dict):
            where = block + ("policy",) if "policy" in written else path
        else:
            where = ("defaults", "edge", "policy")
        # A name the schema refused is checked as a policy without a key that uses its capacity.
        rule = POLICIES.get(policy) if isinstance(policy, str) else None
        # A capacity beside such a policy in the same block was surely meant; one inherited from
        # defaults.edge, for every edge, was not (the policy simply ignores it there).
        if "policy" in written:
            same_block = "capacity" in written
        else:
            same_block = "capacity" not in written
        if rule is not None and not rule.uses_capacity and "capacity" in options and same_block:
            at = block + ("capacity",) if "capacity" in written else ("defaults", "edge", "capacity")
            self.add("HR037", at, f"'capacity' has no effect with policy '{policy}' ({rule.capacity_note})",
                     rule.capacity_hint, at_key=True)
        if rule is not None and rule.keyed:
            if "key" not in options:
                self.add("HR037", where, f"policy '{policy}' needs a 'key'",
                         "add `key: <field>` naming the field that identifies events to merge")
            return
        for key in ("key", "merge"):
            if key in options:
                key_path = block + (key,) if isinstance(entry, dict) and key in written else ("defaults", "edge", key)
                self.add("HR037", key_path,
                         f"'{key}' applies only to policy {_KEYED_NAMES} (policy is '{policy}')",
                         f"remove '{key}', or set policy: {_KEYED[0]}", at_key=True)

    def cycles(self, nodes: dict[str, CheckedNode]) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        stack: list[str] = []

        def visit(name: str) -> bool:
            state[name] = 1
            stack.append(name)
            for dep in nodes[name].inputs:
                if state.get(dep.node) == 1:
                    loop = stack[stack.index(dep.node):] + [dep.node]
                    self.add("HR035", dep.path, "the graph has a cycle: " + " <- ".join(loop),
                             "graphs are acyclic; remove one of these inputs")
                    return True
                if dep.node not in state and visit(dep.node):
                    return True
            stack.pop()
            state[name] = 2
            return False

        for name in sorted(nodes):
            if name not in state and visit(name):
                return

    def unconsumed(self, nodes: dict[str, CheckedNode]) -> None:
        consumed = {i.node for node in nodes.values() for i in node.inputs}
        for name, node in nodes.items():
            if node.spec.has_output and name not in consumed:
                self.add(UNREAD_OUTPUT, ("nodes", name), f"the output of '{name}' is never read",
                         "add a node with `from: " + name + "`, or remove it", at_key=True, severity=WARNING)


    def acknowledged_in_memory(self, nodes: dict[str, CheckedNode]) -> None:
        """A connector source acknowledges what it read once it is on its output edges
        (`handed_on`); on a memory edge that is before it is safe (docs/connectors.md#delivery).
        Its `errors` port is left alone: a dead letter is already a message given up on."""
        for name, node in nodes.items():
            for entry in node.inputs:
                source = nodes[entry.node]
                if source.spec.acknowledges and not entry.edge.durable and entry.port != ERRORS_PORT:
                    self.add(ACKED_IN_MEMORY, entry.path,
                             f"node '{entry.node}' ({source.spec.name}) acknowledges messages before they are safe: "
                             "a crash loses what is in memory (at-most-once); set `edge: {durable: true}` on its "
                             "output for at-least-once",
                             f"write `from: {{node: {entry.node}{_port_key(entry)}, edge: {{durable: true}}}}` "
                             f"in '{name}' (or `defaults: {{edge: {{durable: true}}}}`)", severity=WARNING)


def _port_key(entry: CheckedInput) -> str:
    return "" if entry.port == "out" else f", port: {entry.port}"


def entry_label(entry: CheckedInput) -> str:
    return entry.node if entry.port == "out" else f"{entry.node}.{entry.port}"


def check_graph(doc: Document, registry: SpecRegistry, name: str, version: int) -> tuple[CheckedGraph, list[Problem]]:
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_nodes = data.get("nodes")
    raw_nodes = raw_nodes if isinstance(raw_nodes, dict) else {}
    defaults_block = data.get("defaults")
    edge_defaults = defaults_block.get("edge") if isinstance(defaults_block, dict) else None
    # `partition_by` is per input: the schema refused it here, so no edge inherits it.
    defaults = dict(edge_defaults) if isinstance(edge_defaults, dict) else {}
    defaults.pop("partition_by", None)
    checker = _Checker(doc, registry, {str(n) for n in raw_nodes}, version)
    nodes = checker.nodes(raw_nodes)
    checker.inputs(raw_nodes, nodes, defaults)
    checker.cycles(nodes)
    checker.unconsumed(nodes)
    checker.acknowledged_in_memory(nodes)
    secrets = data.get("secret_fields")
    secret_fields = tuple(sorted({str(f) for f in secrets})) if isinstance(secrets, list) else ()
    graph = CheckedGraph(name, version, nodes, secret_fields)
    # Node families' checks (GPU segments) run over the compiled plan: loader/findings.py.
    return graph, checker.problems + partition_problems(doc, registry, graph)
