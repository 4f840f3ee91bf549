"""A topology as a Mermaid flowchart, as GitHub renders it in a ```mermaid block.

Sources are stadiums, transforms rectangles, sinks funnels (an upside-down trapezoid);
durable edges are thick, dead-letter (`errors`) edges dotted; fused chains and GPU
segments are subgraphs. Ids are `n_name` and `g_name`, never a Mermaid keyword.
"""

from typing import Final

from adapters.pictures.topology import Edge, Group, Node, Topology
from engine.spec import SINK, SOURCE

_SHAPES: Final = {SOURCE: ('(["', '"])'), SINK: ('[\\"', '"/]')}
_RECTANGLE: Final = ('["', '"]')


def _text(value: str) -> str:
    """Mermaid's quoted text takes no `"`: its entity code instead."""
    return value.replace('"', "#quot;")


def node_line(node: Node) -> str:
    opening, closing = _SHAPES.get(node.kind, _RECTANGLE)
    return f"{node.id}{opening}{_text(node.name)}<br/>{_text(node.type)}{closing}"


def edge_line(edge: Edge) -> str:
    arrow = "==>" if edge.durable else "-.->" if edge.dead_letter else "-->"
    return f'{edge.source} {arrow}|"{_text(edge.label)}"| {edge.target}'


def _group_lines(group: Group, nodes: dict[str, Node]) -> list[str]:
    lines = [f'subgraph {group.id}["{_text(group.label)}"]']
    lines += ["    " + node_line(nodes[member]) for member in group.nodes]
    return [*lines, "end"]


def mermaid(topology: Topology) -> str:
    nodes = {n.id: n for n in topology.nodes}
    lines = ["flowchart LR"]
    drawn: set[str] = set()
    for node in topology.nodes:
        group = topology.group_of(node.id)
        if group is None:
            lines.append(node_line(node))
        elif group.id not in drawn:
            drawn.add(group.id)
            lines += _group_lines(group, nodes)
    lines += [edge_line(edge) for edge in topology.edges]
    return "\n".join(lines[:1] + ["    " + line for line in lines[1:]]) + "\n"
