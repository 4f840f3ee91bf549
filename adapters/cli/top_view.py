"""What `engine top` shows: one frame of a running `engine serve` as data (the `--json` form),
as plain text (`--once`, and frames printed to a pipe), and as the rich tables of the live view.

A frame's numbers are the control plane's counters exactly as `GetGraph` returns them (the
ones `engine ctl status GRAPH` prints); the only numbers computed here are the rates: the
difference of a total between two polls divided by the seconds between the two answers. A
node that was not in the previous poll, or whose counters went down (a reload replaced it),
has no rate (`null`, shown `-`) until the next poll.

Loads no grpc: the messages come in from `top_cmd.py`; rich loads only for the live view.
"""

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from adapters.cli.ctl_format import NONE, moment, short_hash, table

if TYPE_CHECKING:
    from rich.console import RenderableType

SORT_KEYS = ("name", "in", "out", "errors", "rate")
BAR_WIDTH = 12
RATE_DIGITS = 3  # rates in JSON: rounded to a thousandth of an event a second

# node name -> (events_in, events_out, errors) at one poll
Counters = dict[str, tuple[int, int, int]]


def counters(graph: Any) -> Counters:
    return {n.name: (n.events_in, n.events_out, n.errors) for n in graph.nodes}


def per_second(now: int, before: int | None, elapsed: float | None) -> float | None:
    """(now - before) / elapsed; None with no previous poll or when the total went down."""
    if before is None or elapsed is None or elapsed <= 0 or now < before:
        return None
    return round((now - before) / elapsed, RATE_DIGITS)


def graph_dict(graph: Any, before: Counters | None, elapsed: float | None) -> dict[str, Any]:
    """One Graph message as the frame shows it: totals as they came, rates against `before`
    (the counters of the poll `elapsed` seconds earlier)."""
    s = graph.summary
    nodes = []
    for n in graph.nodes:
        earlier = (before or {}).get(n.name)
        rates = [per_second(now, earlier[i] if earlier else None, elapsed)
                 for i, now in enumerate((n.events_in, n.events_out, n.errors))]
        nodes.append({"name": n.name, "type": n.type, "state": n.state,
                      "in": n.events_in, "out": n.events_out, "errors": n.errors,
                      "in_per_s": rates[0], "out_per_s": rates[1], "errors_per_s": rates[2],
                      "busy_seconds": n.busy_seconds})
        if n.connection:  # connectors only
            nodes[-1].update(connection=n.connection, reconnects=n.reconnects, last_error=n.last_error)
    edges = [{"id": e.id, "policy": e.policy, "depth": e.depth, "capacity": e.capacity,
              "fill": round(e.depth / e.capacity, 4) if e.capacity > 0 else None,
              "dropped": e.dropped, "enqueued": e.enqueued, "coalesced": e.coalesced,
              "high_water": e.high_water, "blocked_seconds": e.blocked_seconds} for e in graph.edges]
    return {"name": s.name, "file": s.file, "state": s.state, "plan_hash": s.plan_hash,
            "failure": graph.failure, "nodes": nodes, "edges": edges}


def _busiest(node: Mapping[str, Any]) -> float:
    """`--sort rate`: events a second through a node, the larger of in/s and out/s (a source
    only sends, a sink only takes)."""
    return float(max(node["in_per_s"] or 0.0, node["out_per_s"] or 0.0))


SORTS: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "in": lambda n: float(n["in"]), "out": lambda n: float(n["out"]), "errors": lambda n: float(n["errors"]),
    "rate": _busiest,
}


def sorted_nodes(nodes: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """By name; or the largest first by `key`, ties by name."""
    if key == "name":
        return sorted(nodes, key=lambda n: str(n["name"]))
    value = SORTS[key]
    return sorted(nodes, key=lambda n: (-value(n), str(n["name"])))


def sorted_frame(graphs: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    return [dict(g, nodes=sorted_nodes(g["nodes"], key)) for g in graphs]


def frame_json(graphs: Sequence[Mapping[str, Any]], key: str, at: float, indent: int | None) -> str:
    """`--json`: {"time": epoch seconds, "graphs": [...]}, nodes in `key` order."""
    return json.dumps({"time": round(at, 3), "graphs": sorted_frame(graphs, key)}, indent=indent,
                      ensure_ascii=False)


def rate_text(value: float | None) -> str:
    return NONE if value is None else f"{value:.1f}"


def bar(fill: float | None, width: int = BAR_WIDTH, full: str = "#", empty: str = ".") -> str:
    """depth/capacity as `width` cells, a started cell counted full (one waiting event shows)."""
    if fill is None:
        return empty * width
    cells = min(width, math.ceil(fill * width))
    return full * cells + empty * (width - cells)


def connections_line(g: Mapping[str, Any]) -> str:
    """`connections: orders connected, cache reconnecting (3 reconnects)`; "" without connectors."""
    shown = []
    for n in g["nodes"]:
        if "connection" in n:
            count = f" ({n['reconnects']} reconnects)" if n["reconnects"] else ""
            shown.append(f"{n['name']} {n['connection']}{count}")
    return "connections: " + ", ".join(shown) if shown else ""


def _title(g: Mapping[str, Any]) -> str:
    return f"graph '{g['name'] or NONE}' ({g['file']})  {g['state']}  plan {short_hash(g['plan_hash'])}"


def _node_row(n: Mapping[str, Any]) -> list[object]:
    return [n["name"], n["type"], n["state"], rate_text(n["in_per_s"]), rate_text(n["out_per_s"]),
            rate_text(n["errors_per_s"]), n["in"], n["out"], n["errors"], f"{n['busy_seconds']:.3f}"]


NODE_HEADERS = ("NODE", "TYPE", "STATE", "IN/S", "OUT/S", "ERR/S", "IN", "OUT", "ERRORS", "BUSY S")
EDGE_HEADERS = ("EDGE", "POLICY", "FILL", "DEPTH/CAP", "ENQUEUED", "DROPPED", "BLOCKED S")


def _edge_cells(e: Mapping[str, Any]) -> list[object]:
    return [e["id"], e["policy"], f"{e['depth']}/{e['capacity']}", e["enqueued"], e["dropped"],
            f"{e['blocked_seconds']:.3f}"]


def text_frame(graphs: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """`engine top --once`, or one frame to a pipe: per graph a title line, its nodes and its
    edges as `engine ctl status GRAPH` lays them out, with rates and a fill bar."""
    if not graphs:
        return ["no graphs"]
    lines: list[str] = []
    for g in sorted_frame(graphs, key):
        if lines:
            lines.append("")
        lines.append(_title(g))
        if g["failure"]:
            lines.append(f"  failure: {g['failure'].splitlines()[0]}")
        if g["nodes"]:
            lines += [""] + table(NODE_HEADERS, [_node_row(n) for n in g["nodes"]], numeric=range(3, 10))
            if connections_line(g):
                lines.append(connections_line(g))
        if g["edges"]:
            rows = []
            for e in g["edges"]:
                cells = _edge_cells(e)
                rows.append([cells[0], cells[1], f"[{bar(e['fill'])}]", *cells[2:]])
            lines += [""] + table(EDGE_HEADERS, rows, numeric=range(3, 7))
    return lines


STATE_STYLES = {"running": "green", "finished": "default", "failed": "red", "rejected": "red"}


def _fill_style(fill: float | None) -> str:
    if fill is None or fill < 0.5:
        return "green"
    return "yellow" if fill < 0.9 else "red"


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int,
                keep: Sequence[int] | None) -> Any:
    """A table of the columns in `keep` (every one: None), two spaces apart; those from
    `numeric_from` on are numbers, right-aligned; the first (a name) is never cut short."""
    from rich import box
    from rich.table import Table

    chosen = range(len(headers)) if keep is None else keep
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for i in chosen:
        out.add_column(headers[i], justify="right" if i >= numeric_from else "left", no_wrap=i == 0,
                       min_width=max(len(str(row[0])) for row in rows) if i == 0 else None)
    for row in rows:
        out.add_row(*(row[i] for i in chosen))
    return out


def _fitting_table(console: Any, headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int,
                   narrow: Sequence[int]) -> Any:
    """Every column when they fit the console's width, else only those in `narrow`."""
    from rich.measure import Measurement

    full = _rich_table(headers, rows, numeric_from, None)
    unbounded = console.options.update_width(UNBOUNDED)  # else the measure stops at the width
    if Measurement.get(console, unbounded, full).maximum <= console.width:
        return full
    return _rich_table(headers, rows, numeric_from, narrow)


UNBOUNDED = 1 << 16
NARROW_NODE_COLUMNS = (0, 3, 4, 6, 7, 8)  # NODE IN/S OUT/S IN OUT ERRORS
NARROW_EDGE_COLUMNS = (0, 2, 3, 5)  # EDGE FILL DEPTH/CAP DROPPED


def live_view(graphs: Sequence[Mapping[str, Any]], *, address: str, key: str, only: str | None,
              note: str, console: Any) -> "RenderableType":
    """The live view's screen for `console` (a rich Console): a header with the keys, then per
    graph a table of its nodes and one of its edges, the fill of each edge as a coloured bar.
    A table too wide for the terminal keeps only its main columns."""
    from rich.console import Group
    from rich.text import Text

    header = Text.assemble(("engine top", "bold"), f"  {address}  {moment(time.time())}  sort: ", (key, "bold"),
                           " (s)  graph: ", (only or "all", "bold"), " (g)  q: quit")
    parts: list[RenderableType] = [header]
    if note:
        parts.append(Text(note, style="bold red"))
    if not graphs:
        parts.append(Text("no graphs"))
    for g in sorted_frame(graphs, key):
        state_style = STATE_STYLES.get(g["state"], "yellow")
        parts.append(Text.assemble("\n", (f"graph '{g['name'] or NONE}'", "bold"), f" ({g['file']})  ",
                                   (g["state"], state_style), f"  plan {short_hash(g['plan_hash'])}"))
        if g["failure"]:
            parts.append(Text(f"failure: {g['failure'].splitlines()[0]}", style="red"))
        if g["nodes"]:
            rows = [[Text(str(c), style="red" if n["errors"] else "") for c in _node_row(n)] for n in g["nodes"]]
            parts += [Text(""), _fitting_table(console, NODE_HEADERS, rows, 3, NARROW_NODE_COLUMNS)]
            if connections_line(g):
                parts.append(Text(connections_line(g)))
        if g["edges"]:
            edge_rows = []
            for e in g["edges"]:
                cells = [str(c) for c in _edge_cells(e)]
                fill = Text(bar(e["fill"], full="█", empty="░"), style=_fill_style(e["fill"]))
                edge_rows.append([cells[0], cells[1], fill, *cells[2:]])
            parts += [Text(""), _fitting_table(console, EDGE_HEADERS, edge_rows, 3, NARROW_EDGE_COLUMNS)]
    return Group(*parts)
