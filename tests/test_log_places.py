"""Several graphs log into one `engine serve` stream: a line about a node or an edge names
its graph (text: a `graph/node` prefix; JSON: `graph`, `node`, `edge` fields)."""

import json
import logging

from adapters.serve.logs import JsonFormatter, TextFormatter
from tests.runtime_support import run_graph


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def node_warning() -> logging.LogRecord:
    keep = Keep()
    logger = logging.getLogger("headrace")
    logger.addHandler(keep)
    try:
        run_graph("""
            version: 2
            name: billing
            nodes:
              src: {type: generate, with: {count: 1, fields: {n: "'x'"}}}
              calc: {type: map, from: src, with: {set: {n: "int(n)"}}}
              out: {type: "null", from: calc}
            """)
    finally:
        logger.removeHandler(keep)
    [record] = [r for r in keep.records if "calc" in r.getMessage()]
    return record


def test_a_node_warning_names_its_graph_in_text_and_json():
    record = node_warning()
    text = TextFormatter().format(record)
    assert text.startswith("engine: warning: billing/calc: node 'calc' (map): ")
    fields = json.loads(JsonFormatter().format(record))
    assert fields["graph"] == "billing" and fields["node"] == "calc" and "edge" not in fields
    assert fields["message"].startswith("node 'calc' (map): ")


def test_an_edge_line_names_graph_and_edge():
    record = logging.LogRecord("headrace", logging.WARNING, __file__, 1, "durable edge 'a->b' is full", None, None)
    record.graph, record.edge = "orders", "a->b"
    assert TextFormatter().format(record) == "engine: warning: orders/a->b: durable edge 'a->b' is full"
    fields = json.loads(JsonFormatter().format(record))
    assert (fields["graph"], fields["edge"]) == ("orders", "a->b")


def test_a_line_about_nothing_in_particular_is_unchanged():
    record = logging.LogRecord("headrace", logging.INFO, __file__, 1, "serving graphs/", None, None)
    assert TextFormatter().format(record) == "engine: info: serving graphs/"
    assert set(json.loads(JsonFormatter().format(record))) == {"time", "level", "message"}
