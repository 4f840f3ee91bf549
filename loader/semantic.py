"""Semantic checks after the schema: references, ports, cycles, edge options, expressions.

Runs on whatever parts of the document are well-formed (the schema has already reported
the rest), and produces the checked stage: nodes with their inputs resolved.
"""

import re
from dataclasses import dataclass, field

from engine.builtin_specs import AGGREGATE
from engine.expr import suggest
from engine.ids import NAME_PATTERN, split_port_ref
from engine.plan import DEFAULT_ERROR_ACTION, DEFAULT_POLICY, ERRORS_PORT
from engine.spec import NodeSpec, SpecRegistry
from loader.check_expressions import expression_problems
from loader.document import Document, KeyPath
from engine.durations import duration_ms
from loader.problems import ERROR, WARNING, Problem, format_path
from loader.schema_gen import PORT_REF_PATTERN

_EDGE_KEYS = ("capacity", "policy", "key", "merge", "storage")
_EDGE_KEYS_V2 = ("durable",)


def _internal(options: dict[str, object]) -> dict[str, object]:
    """Edge options in the plan's terms, whichever format version wrote them."""
    out = dict(options)
    if out.pop("durable", False) is True:
        out["storage"] = "lmdb"
    if out.get("policy") == "keep_latest":
        out["policy"] = "latest"
    return out
UNREAD_OUTPUT = "HR070"
_PORT_REF = re.compile(PORT_REF_PATTERN)
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class CheckedInput:
    node: str
    port: str
    options: dict[str, object]
    path: KeyPath


@dataclass
class CheckedNode:
    name: str
    spec: NodeSpec
    params: dict[str, object]
    on_error: object
    inputs: list[CheckedInput] = field(default_factory=list)
    ports: tuple[str, ...] = ()


@dataclass
class CheckedGraph:
    name: str
    version: int
    nodes: dict[str, CheckedNode]
    secret_fields: tuple[str, ...] = ()


def _dead_letters(on_error: object) -> bool:
    if on_error == "dead_letter":
        return True
    return isinstance(on_error, dict) and "dead_letter" in (on_error.get("action"), on_error.get("then"))


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
            spec = self.registry.get(raw.get("type")) if isinstance(raw.get("type"), str) else None
            if spec is None:
                continue
            params = raw.get("with", {})
            params = dict(params) if isinstance(params, dict) else {}
            node = CheckedNode(name, spec, params, raw.get("on_error", DEFAULT_ERROR_ACTION))
            node.ports = spec.output_ports(params) + ((ERRORS_PORT,) if _dead_letters(node.on_error) else ())
            checked[name] = node
            self.problems.extend(expression_problems(self.doc, ("nodes", name), spec, params))
            if spec is AGGREGATE:
                self.window(("nodes", name, "with", "window"), params.get("window"))
            self.on_error(("nodes", name, "on_error"), node.on_error)
        return checked

    def window(self, path: KeyPath, window: object) -> None:
        if not isinstance(window, dict):
            return
        kind = window.get("type")
        unused = {"tumbling": ("every", "gap"), "sliding": ("gap",), "session": ("size", "every")}.get(str(kind), ())
        for key in unused:
            if key in window:
                self.add("HR039", path + (key,), f"'{key}' does not apply to {kind} windows",
                         f"remove '{key}', or change the window type", at_key=True)
        size, every = duration_ms(window.get("size")), duration_ms(window.get("every"))
        if kind == "sliding" and size is not None and every is not None and (every > size or every == 0):
            self.add("HR039", path + ("every",), "'every' must be greater than 0 and at most 'size'",
                     "a sliding window starts every `every` and lasts `size`")

    def on_error(self, path: KeyPath, on_error: object) -> None:
        if isinstance(on_error, dict) and on_error.get("action") != "retry":
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
            options.update({k: written[k] for k in _EDGE_KEYS_V2 + _EDGE_KEYS if k in written})
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
        return CheckedInput(upstream, port, _internal(options), path)

    def written_options(self, entry: dict[str, object]) -> dict[str, object]:
        """Version 2 groups an input's edge options in `edge:`; version 1 mixed them in."""
        if self.version >= 2:
            block = entry.get("edge")
            return block if isinstance(block, dict) else {}
        return entry

    def edge_options(self, path: KeyPath, options: dict[str, object], entry: object) -> None:
        policy = options.get("policy", DEFAULT_POLICY)
        written = self.written_options(entry) if isinstance(entry, dict) else {}
        block = path + ("edge",) if self.version >= 2 else path
        if isinstance(entry, dict):
            where = block + ("policy",) if "policy" in written else path
        else:
            where = ("defaults", "edge", "policy")
        # A capacity beside keep_latest in the same block was surely meant; one inherited from
        # defaults.edge, for every edge, was not (keep_latest simply keeps one event there).
        same_block = "capacity" in written if "policy" in written else "policy" not in written and "capacity" not in written
        if policy == "keep_latest" and "capacity" in options and same_block:
            at = block + ("capacity",) if "capacity" in written else ("defaults", "edge", "capacity")
            self.add("HR037", at, "'capacity' has no effect with policy 'keep_latest' (it keeps one event)",
                     "remove `capacity`, or use `policy: drop_oldest` to keep the newest N events", at_key=True)
        if policy == "coalesce" and "key" not in options:
            self.add("HR037", where, "policy 'coalesce' needs a 'key'",
                     "add `key: <field>` naming the field that identifies events to merge")
        elif policy != "coalesce":
            for key in ("key", "merge"):
                if key in options:
                    key_path = block + (key,) if isinstance(entry, dict) and key in written else ("defaults", "edge", key)
                    self.add("HR037", key_path, f"'{key}' applies only to policy 'coalesce' (policy is '{policy}')",
                             f"remove '{key}', or set policy: coalesce", at_key=True)

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


def entry_label(entry: CheckedInput) -> str:
    return entry.node if entry.port == "out" else f"{entry.node}.{entry.port}"


def check_graph(doc: Document, registry: SpecRegistry, name: str, version: int) -> tuple[CheckedGraph, list[Problem]]:
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_nodes = data.get("nodes")
    raw_nodes = raw_nodes if isinstance(raw_nodes, dict) else {}
    defaults_block = data.get("defaults")
    edge_defaults = defaults_block.get("edge") if isinstance(defaults_block, dict) else None
    defaults = dict(edge_defaults) if isinstance(edge_defaults, dict) else {}
    checker = _Checker(doc, registry, {str(n) for n in raw_nodes}, version)
    nodes = checker.nodes(raw_nodes)
    checker.inputs(raw_nodes, nodes, defaults)
    checker.cycles(nodes)
    checker.unconsumed(nodes)
    secrets = data.get("secret_fields")
    secret_fields = tuple(sorted({str(f) for f in secrets})) if isinstance(secrets, list) else ()
    graph = CheckedGraph(name, version, nodes, secret_fields)
    if not any(p.severity == ERROR for p in checker.problems):
        for family_check in registry.graph_checks:  # e.g. GPU segments: columns and kernel types
            checker.problems.extend(p for p in family_check(graph, doc) if isinstance(p, Problem))
    return graph, checker.problems
