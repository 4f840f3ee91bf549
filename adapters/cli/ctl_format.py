"""What `engine ctl` prints: control-plane answers as tables and lines for people, or as JSON;
and the JSON Lines file `tap --save` writes.

The JSON form of an answer is its proto message with the proto's field names, every field
present (zeros and empty lists too), 64-bit integers as numbers, and the fields that carry
JSON text (`TapEvent.json`, `EngineEvent.json`) embedded as parsed values.
"""

import contextlib
import json
import os
import stat
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adapters.serve.vocabulary import NODE_RESULTS, nodes_text

if TYPE_CHECKING:  # protobuf loads with the gRPC client, not with every `engine` command
    from google.protobuf.message import Message

NONE = "-"  # a cell with nothing in it
JSON_TEXT_FIELDS = frozenset({"json"})
SHORT_HASH = len("sha256:") + 12  # as `engine serve` logs it


def to_dict(message: "Message") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = {k: to_dict(v) if hasattr(v, "DESCRIPTOR") else v for k, v in sorted(value.items())}
        elif field.message_type is not None:
            out[field.name] = [to_dict(v) for v in value] if field.is_repeated else to_dict(value)
        elif field.is_repeated:
            out[field.name] = list(value)
        elif field.name in JSON_TEXT_FIELDS and field.type == field.TYPE_STRING:
            out[field.name] = _parsed(value)
        else:
            out[field.name] = value
    return out


def _parsed(text: str) -> Any:
    """JSON text as a value; text that is not JSON stays a string (nothing is dropped)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def dumps(message: "Message", indent: int | None = 2) -> str:
    return json.dumps(to_dict(message), indent=indent, ensure_ascii=False)


def short_hash(plan_hash: str) -> str:
    return plan_hash[:SHORT_HASH] if plan_hash else NONE


def moment(epoch_s: float, millis: bool = False) -> str:
    """Epoch seconds as UTC ISO 8601 (`2026-05-01T12:00:03Z`); 0 (never) as `-`."""
    if epoch_s <= 0:
        return NONE
    seconds, ms = divmod(round(epoch_s * 1000), 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (f".{ms:03d}Z" if millis else "Z")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> list[str]:
    """Columns two spaces apart, numbers (columns in `numeric`) right-aligned."""
    cells = [[str(c) if c != "" else NONE for c in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers)] + cells:
        parts = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


def graphs_table(graphs: Sequence[Any]) -> list[str]:
    """`engine ctl status`: one row per graph (GraphSummary)."""
    if not graphs:
        return ["no graphs"]
    rows = [(g.name, g.file, g.state, g.last_result, short_hash(g.plan_hash), moment(g.loaded_at))
            for g in graphs]
    return table(("GRAPH", "FILE", "STATE", "LAST RESULT", "PLAN", "LOADED AT"), rows)


def graph_detail(graph: Any) -> list[str]:
    """`engine ctl status GRAPH`: the summary, nodes, edges, problems and failure of one Graph."""
    s = graph.summary
    lines = [f"graph '{s.name}'"]
    fields = [("file", s.file), ("state", s.state), ("plan", s.plan_hash or NONE),
              ("loaded at", moment(s.loaded_at)),
              ("last result", f"{s.last_result or NONE} at {moment(s.last_reload_at)}" if s.last_reload_at
               else s.last_result or NONE)]
    nodes = changes_text(s.last_nodes) if s.HasField("last_nodes") else ""
    if nodes:
        fields.append(("nodes", nodes))
    lines += [f"  {key + ':':<13}{value or NONE}" for key, value in fields]
    if graph.failure:
        lines += ["", "failure:"] + [f"  {line}" for line in graph.failure.splitlines()]
    if s.problems:
        lines += ["", "problems of the rejected version:"] + [f"  {p}" for p in s.problems]
    if graph.nodes:
        rows = [(n.name, n.type, n.state, n.events_in, n.events_out, n.errors, f"{n.busy_seconds:.3f}")
                for n in graph.nodes]
        lines += [""] + table(("NODE", "TYPE", "STATE", "IN", "OUT", "ERRORS", "BUSY S"), rows, numeric=(3, 4, 5, 6))
        # Connectors only: the nodes without a connection have no row here.
        linked = [(n.name, n.connection, n.reconnects, n.last_error or NONE) for n in graph.nodes if n.connection]
        if linked:
            lines += [""] + table(("NODE", "CONNECTION", "RECONNECTS", "LAST ERROR"), linked, numeric=(2,))
    if graph.edges:
        edge_rows = [(e.id, e.policy, f"{e.depth}/{e.capacity}", e.enqueued, e.dropped, e.coalesced, e.high_water,
                      f"{e.blocked_seconds:.3f}") for e in graph.edges]
        lines += [""] + table(("EDGE", "POLICY", "DEPTH/CAP", "ENQUEUED", "DROPPED", "COALESCED", "HIGH WATER",
                               "BLOCKED S"), edge_rows, numeric=(2, 3, 4, 5, 6, 7))
    return lines


def subject(graph: str, node: str) -> str:
    return f"node '{graph}/{node}'" if node else f"graph '{graph}'"


def pause_line(answer: Any) -> str:
    """`graph 'alerts': paused`, `node 'alerts/by_severity': running (already was)`."""
    if answer.paused:
        state = "paused"
    else:
        state = "resumed" if answer.changed else "running"
    return f"{subject(answer.graph, answer.node)}: {state}" + ("" if answer.changed else " (already was)")


def drain_line(answer: Any) -> str:
    if answer.drained:
        return f"graph '{answer.graph}': drained"
    return f"graph '{answer.graph}': timed out, {answer.remaining} events remain"


def changes_text(nodes: Any) -> str:
    """A NodeChanges message in the reload vocabulary: `kept a; replaced out`."""
    lists = {kind: list(getattr(nodes, kind)) for kind in NODE_RESULTS}
    return nodes_text(lists, nodes.whole_swap)


def result_lines(result: Any) -> list[str]:
    """One reload result as `engine serve` logs it: `alerts.yaml: updated (graph 'alerts', plan
    sha256:9d1c0e1b4a2f); kept orders; replaced out`, then its problems indented."""
    line = f"{result.file}: {result.result}"
    if result.graph:
        line += f" (graph '{result.graph}'" + (f", plan {short_hash(result.plan_hash)})" if result.plan_hash else ")")
    nodes = changes_text(result.nodes) if result.HasField("nodes") and result.result != "added" else ""
    if nodes:
        line += f"; {nodes}"
    if result.dropped:
        line += f"; the drain timed out: {result.dropped} events dropped"
    return [line] + [f"  {p}" for p in result.problems]


def event_line(event: Any) -> str:
    """`time kind graph detail` for one EngineEvent."""
    return f"{moment(event.time, millis=True)} {event.kind or NONE} {event.graph or NONE} {event.detail}".rstrip()


class SavedEvents:
    """`engine ctl tap --save FILE`: the tapped events as JSON Lines, one line per event, each
    written whole as it comes (the file can be followed while it grows). Closing cuts off a
    line an interruption left half-written, so whatever ends the command leaves a valid JSON
    Lines file. FILE is checked (opened for writing) at once but emptied only at the first
    event: a tap the engine refuses leaves it as it was, and removes it if it was not there."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.created = not os.path.lexists(file)
        self.fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o666)
        self.regular = stat.S_ISREG(os.fstat(self.fd).st_mode)  # not a pipe or /dev/stdout
        self.started = False
        self.count = 0
        self.size = 0  # bytes of whole lines

    def write(self, text: str) -> None:
        """One event's JSON text (compact, as the engine sends it) as one line."""
        if not self.started:
            self.started = True
            if self.regular:
                os.ftruncate(self.fd, 0)
        data = memoryview(text.encode("utf-8") + b"\n")
        size = self.size + len(data)
        while data:
            data = data[os.write(self.fd, data):]
        self.size = size
        self.count += 1

    def close(self, refused: bool = False) -> None:
        """Ends the file after its last whole line; again: nothing. `refused`: the tap ended
        in an error, so a file that was not there and got no event is removed."""
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            if self.regular and (self.started or not refused):
                os.ftruncate(fd, self.size)
        finally:
            os.close(fd)
        if refused and not self.started and self.created:
            with contextlib.suppress(OSError):  # already gone: nothing to tidy
                os.unlink(self.file)
