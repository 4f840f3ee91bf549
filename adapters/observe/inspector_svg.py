"""The inspector's picture of one graph: SVG drawn here from the neutral topology
(adapters/pictures/topology.py), so the page needs no JavaScript library and no Graphviz.

A simple layered layout: each node's column is its longest path from a source (sources
left, sinks right), rows in the topology's order. Every node box has a line the page fills
with its counters and one with its rate, every edge a fill bar the page sizes and colours. Names, types, policies
and capacities only: the topology holds no parameter value, so neither does the picture.
"""

import hashlib
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from adapters.pictures.topology import Topology

NODE_W: Final = 170
NODE_H: Final = 62
GAP_X: Final = 130  # room for an edge's label: `[port · ]policy capacity[ · durable]`
GAP_Y: Final = 34
MARGIN: Final = 20
BAR_W: Final = 44  # the page scales each fill bar's inner rectangle to depth / capacity of this
BAR_H: Final = 7
GROUP_PAD: Final = 10
NAME_CHARS: Final = 18  # longer names and types are cut with an ellipsis (the full one is in the title)


def _columns(topo: Topology) -> dict[str, int]:
    """Node id -> its column: 0 for a node without inputs, else one past its furthest input."""
    column = {n.id: 0 for n in topo.nodes}
    for node in topo.nodes:  # upstream first: every input's column is final when it is read
        inputs = [column[e.source] + 1 for e in topo.edges if e.target == node.id and e.source in column]
        column[node.id] = max(inputs, default=0)
    return column


def layout(topo: Topology) -> tuple[dict[str, tuple[int, int]], int, int]:
    """Node id -> (x, y) of its box's top-left corner, and the picture's width and height."""
    column = _columns(topo)
    by_column: dict[int, list[str]] = {}
    for node in topo.nodes:
        by_column.setdefault(column[node.id], []).append(node.id)
    tallest = max((len(ids) for ids in by_column.values()), default=1)
    height = 2 * MARGIN + tallest * NODE_H + (tallest - 1) * GAP_Y + 2 * GROUP_PAD
    width = 2 * MARGIN + len(by_column) * NODE_W + max(len(by_column) - 1, 0) * GAP_X
    places: dict[str, tuple[int, int]] = {}
    for col, ids in by_column.items():
        used = len(ids) * NODE_H + (len(ids) - 1) * GAP_Y
        top = (height - used) // 2  # each column centred
        for row, nid in enumerate(ids):
            places[nid] = (MARGIN + col * (NODE_W + GAP_X), top + row * (NODE_H + GAP_Y))
    return places, max(width, 2 * MARGIN + NODE_W), height


def _short(text: str) -> str:
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def _attr(value: object) -> str:
    return quoteattr(str(value))


def render(topo: Topology) -> str:
    """The SVG document of `topo`; its elements carry `data-node` and `data-edge` (the names
    and edge ids the inspector's JSON uses) for the page to update."""
    places, width, height = layout(topo)
    arrow = "a" + hashlib.sha256(topo.name.encode()).hexdigest()[:10]  # one marker id per graph on the page
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="picture" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label={_attr("graph " + topo.name)}>',
           f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>']
    out += _groups(topo, places)
    out += _edges(topo, places, arrow)
    out += _nodes(topo, places)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _groups(topo: Topology, places: dict[str, tuple[int, int]]) -> list[str]:
    out = []
    for group in topo.groups:
        corners = [places[n] for n in group.nodes if n in places]
        if not corners:
            continue
        x0 = min(x for x, _ in corners) - GROUP_PAD
        y0 = min(y for _, y in corners) - GROUP_PAD
        x1 = max(x for x, _ in corners) + NODE_W + GROUP_PAD
        y1 = max(y for _, y in corners) + NODE_H + GROUP_PAD
        out.append(f'<g class="group {group.kind}"><rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" '
                   f'rx="10"/><text x="{x0 + 6}" y="{y0 - 3}" class="group-label">{escape(group.label)}</text></g>')
    return out


def _edges(topo: Topology, places: dict[str, tuple[int, int]], arrow: str) -> list[str]:
    out = []
    for edge in topo.edges:
        if edge.source not in places or edge.target not in places:
            continue
        sx, sy = places[edge.source]
        tx, ty = places[edge.target]
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
        bend = max((x2 - x1) // 2, 30)
        kind = "edge dead-letter" if edge.dead_letter else "edge"
        mx, my = (x1 + x2) // 2, (y1 + y2) // 2  # the curve's middle (its control points are symmetric)
        title = f"<title>{escape(edge.id)}: {escape(edge.label)}</title>"
        out.append(f'<g class={_attr(kind)} data-edge={_attr(edge.id)}>{title}'
                   f'<path d="M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}" '
                   f'marker-end="url(#{arrow})"/>'
                   f'<text x="{mx}" y="{my - 6}" class="edge-label">{escape(edge.label)}</text>'
                   f'<rect x="{mx - BAR_W // 2}" y="{my}" width="{BAR_W}" height="{BAR_H}" class="bar"/>'
                   f'<rect x="{mx - BAR_W // 2}" y="{my}" width="0" height="{BAR_H}" class="fill"/></g>')
    return out


def _nodes(topo: Topology, places: dict[str, tuple[int, int]]) -> list[str]:
    out = []
    for node in topo.nodes:
        x, y = places[node.id]
        out.append(f'<g class={_attr("node " + node.kind)} data-node={_attr(node.name)}>'
                   f"<title>{escape(node.name)} ({escape(node.type)})</title>"
                   f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
                   f'<text x="{x + 10}" y="{y + 18}" class="name">{escape(_short(node.name))}</text>'
                   f'<text x="{x + NODE_W - 8}" y="{y + 34}" class="rate"> </text>'
                   f'<text x="{x + 10}" y="{y + 34}" class="type">{escape(_short(node.type))}</text>'
                   f'<text x="{x + 10}" y="{y + 52}" class="counts"> </text></g>')
    return out
