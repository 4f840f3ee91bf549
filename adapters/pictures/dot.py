"""A topology as a Graphviz DOT digraph (`dot -Tsvg` draws it).

The same picture as the Mermaid one: sources rounded boxes, transforms boxes, sinks
inverted trapezia; durable edges bold, dead-letter (`errors`) edges dashed; fused chains
and GPU segments as clusters.
"""

from typing import Final

from adapters.pictures.topology import SEGMENT, Edge, Group, Node, Topology
from engine.spec import SINK, SOURCE

_SHAPES: Final = {SOURCE: 'shape=box, style="rounded"', SINK: 'shape=invtrapezium, margin="0.05,0.02"'}
_BOX: Final = "shape=box"
_SEGMENT_STYLE: Final = ('style="rounded,filled";', 'fillcolor="#eef4ff";')
_CHAIN_STYLE: Final = ('style="rounded,dashed";',)
_DEFAULTS: Final = ("rankdir=LR;", 'graph [fontname="Helvetica", fontsize=10];',
                    'node [fontname="Helvetica", fontsize=11];', 'edge [fontname="Helvetica", fontsize=9];')


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_line(node: Node) -> str:
    label = quoted(node.name + "\n" + node.type).replace("\n", "\\n")
    return f"{quoted(node.id)} [label={label}, {_SHAPES.get(node.kind, _BOX)}];"


def edge_line(edge: Edge) -> str:
    styles = (["bold"] if edge.durable else []) + (["dashed"] if edge.dead_letter else [])
    style = f", style={quoted(','.join(styles))}" if styles else ""
    return f"{quoted(edge.source)} -> {quoted(edge.target)} [label={quoted(edge.label)}{style}];"


def _cluster_lines(group: Group, nodes: dict[str, Node]) -> list[str]:
    style = _SEGMENT_STYLE if group.kind == SEGMENT else _CHAIN_STYLE
    lines = [f"subgraph {quoted('cluster_' + group.id)} {{", f"    label={quoted(group.label)};"]
    lines += ["    " + line for line in style]
    lines += ["    " + node_line(nodes[member]) for member in group.nodes]
    return [*lines, "}"]


def dot(topology: Topology) -> str:
    nodes = {n.id: n for n in topology.nodes}
    lines = list(_DEFAULTS)
    drawn: set[str] = set()
    for node in topology.nodes:
        group = topology.group_of(node.id)
        if group is None:
            lines.append(node_line(node))
        elif group.id not in drawn:
            drawn.add(group.id)
            lines += _cluster_lines(group, nodes)
    lines += [edge_line(edge) for edge in topology.edges]
    return f"digraph {quoted(topology.name)} {{\n" + "".join(f"    {line}\n" for line in lines) + "}\n"
